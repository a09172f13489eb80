"""Shared test harness: tiny real mmdet runs on generated data.

``tiny_cfg`` turns any detector config of ours into one that trains in about
a second per iteration on a CPU: ResNet-18 with 1/4 of the widths, small FPN
and heads, 96x64 images, an iteration-based loop, no pretrained weights. The
architecture (detector type, heads, losses, custom hooks) is left as the
config defines it, so the tests exercise the real code paths.
"""
import importlib.util
import os
import os.path as osp
import json
import pickle
import socket
import tempfile
import time
import traceback
import uuid
from typing import Any, Callable, List, Optional

import cv2
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config, ConfigDict

from mmdet_alwa.datasets.demo_data import DEMO_CLASSES, generate_demo_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_IMG = (96, 64)
TINY_WIDTH = 16          # ResNet base channels (64 in the real model)
TINY_FPN = 32            # FPN/head channels (256 in the real model)


def load_tool(path: str, name: Optional[str] = None):
    """The script at ``path`` (relative to the repository root, e.g.
    ``'tools/train.py'`` or ``'benchmarks/common.py'``) as a module named
    ``name`` (default: the file's name), its ``__main__`` block not run.

    Scripts are not importable by package path (``tools/`` has no
    ``__init__``; mmdet's layout), and the module is not put in
    ``sys.modules``: each call loads a fresh copy.
    """
    path = path if osp.isabs(path) else osp.join(REPO_ROOT, path)
    spec = importlib.util.spec_from_file_location(
        name or osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_data(root: str, num_train: int = 8, num_val: int = 4,
                   seed: int = 0) -> str:
    """Generate a tiny COCO-format dataset under ``root`` and return it."""
    generate_demo_dataset(root, num_train=num_train, num_val=num_val,
                          img_size=TINY_IMG, seed=seed)
    return root


def voc_xml(objects, size=(96, 64), difficult=()) -> str:
    """A VOC annotation: ``objects`` are (class name, [x1, y1, x2, y2]);
    the indices in ``difficult`` are marked difficult."""
    objs = ''.join(
        f'<object><name>{n}</name><difficult>{int(i in difficult)}</difficult>'
        f'<bndbox>'
        f'<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>'
        f'<ymax>{b[3]}</ymax></bndbox></object>'
        for i, (n, b) in enumerate(objects))
    return (f'<annotation><size><width>{size[0]}</width><height>{size[1]}'
            f'</height><depth>3</depth></size>{objs}</annotation>')


def make_tiny_voc(tiny_data: str, root: str) -> None:
    """Write tiny_data's train split as VOC2007 (images 0-4) + VOC2012
    (5-7) under ``root`` (mmdet's VOCdevkit layout, jpg images)."""
    coco = json.load(open(f'{tiny_data}/annotations/train.json'))
    names = {c['id']: c['name'] for c in coco['categories']}
    for year, ids in (('VOC2007', range(0, 5)), ('VOC2012', range(5, 8))):
        base = osp.join(root, year)
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            os.makedirs(osp.join(base, sub))
        for i in ids:
            img = cv2.imread(f'{tiny_data}/train/{i:06d}.png')
            cv2.imwrite(f'{base}/JPEGImages/{i:06d}.jpg', img)
            objects = [(names[a['category_id']],
                        [a['bbox'][0] + 1, a['bbox'][1] + 1,
                         a['bbox'][0] + a['bbox'][2] + 1,
                         a['bbox'][1] + a['bbox'][3] + 1])
                       for a in coco['annotations'] if a['image_id'] == i]
            with open(f'{base}/Annotations/{i:06d}.xml', 'w') as f:
                f.write(voc_xml(objects))
        with open(f'{base}/ImageSets/Main/trainval.txt', 'w') as f:
            f.write(''.join(f'{i:06d}\n' for i in ids))


def config_path(rel: str) -> str:
    return rel if osp.isabs(rel) else osp.join(REPO_ROOT, rel)


def _shrink_model(model: ConfigDict) -> None:
    num_classes = len(DEMO_CLASSES)
    backbone = model.get('backbone')
    if backbone is not None and backbone.get('type') == 'ResNet':
        backbone.update(depth=18, base_channels=TINY_WIDTH, init_cfg=None,
                        frozen_stages=-1)
        neck = model.get('neck')
        if isinstance(neck, dict) and neck.get('type') == 'FPN':
            neck.in_channels = [TINY_WIDTH * 2**i for i in range(4)]
            neck.out_channels = TINY_FPN
    rpn = model.get('rpn_head')
    if rpn is not None:
        rpn.update(in_channels=TINY_FPN, feat_channels=TINY_FPN)
    roi = model.get('roi_head')
    if roi is not None:
        roi.bbox_roi_extractor.out_channels = TINY_FPN
        heads = roi.bbox_head if isinstance(roi.bbox_head, list) \
            else [roi.bbox_head]  # Cascade R-CNN: one per stage
        for bbox_head in heads:
            bbox_head.update(in_channels=TINY_FPN, fc_out_channels=64,
                             num_classes=num_classes)
    head = model.get('bbox_head')
    if head is not None:
        head.update(in_channels=TINY_FPN, num_classes=num_classes)
        if 'feat_channels' in head:
            head.update(feat_channels=TINY_FPN)
        if 'stacked_convs' in head:
            head.update(stacked_convs=1)
    train_cfg = model.get('train_cfg') or {}
    if 'rcnn' in train_cfg:
        for rcnn in (train_cfg.rcnn if isinstance(train_cfg.rcnn, list)
                     else [train_cfg.rcnn]):
            rcnn.sampler.num = 64
    test_cfg = model.get('test_cfg') or {}
    if 'rpn' in test_cfg:
        test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    # an untrained model must still produce boxes for the evaluator to score
    for key in ('rcnn', None):
        sub = test_cfg.get(key) if key else test_cfg
        if sub is not None and 'score_thr' in sub:
            sub.score_thr = 0.0
    if 'rpn_proposal' in train_cfg:
        train_cfg.rpn_proposal.update(nms_pre=400, max_per_img=200)


def _filter_step(pipeline: List[dict]) -> List[dict]:
    """The config's own degenerate-box filter, if any (kept in tiny runs)."""
    return [dict(t) for t in pipeline if 'FilterAnnotations' in t['type']]


def tiny_cfg(config: str, work_dir: str, data_root: str, max_iters: int = 4,
             val_interval: Optional[int] = None,
             checkpoint_interval: Optional[int] = None,
             batch_size: int = 2, seed: int = 0) -> Config:
    """A tiny but real version of one of our detector configs.

    Args:
        config: path of the config, absolute or relative to the repository.
        work_dir: where logs and checkpoints go.
        data_root: a dataset made by :func:`make_tiny_data`.
        max_iters: training iterations (iteration-based loop).
        val_interval: validate every so many iterations (default: at the end).
        checkpoint_interval: save every so many iterations (default: at the
            end).
    """
    cfg = Config.fromfile(config_path(config))
    _shrink_model(cfg.model)
    old_train = cfg.train_dataloader.dataset
    while 'pipeline' not in old_train:  # RepeatDataset / ConcatDataset
        old_train = old_train.get('dataset') or old_train['datasets'][0]
    metainfo = dict(classes=DEMO_CLASSES)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=TINY_IMG, keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        *_filter_step(old_train.pipeline),
        dict(type='PackDetInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=TINY_IMG, keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor')),
    ]
    cfg.train_dataloader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='CocoDataset', data_root=data_root,
                     metainfo=metainfo, ann_file='annotations/train.json',
                     data_prefix=dict(img='train/'),
                     filter_cfg=dict(filter_empty_gt=True, min_size=4),
                     pipeline=train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        drop_last=False, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CocoDataset', data_root=data_root,
                     metainfo=metainfo, ann_file='annotations/val.json',
                     data_prefix=dict(img='val/'), test_mode=True,
                     pipeline=test_pipeline))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(
        type='CocoMetric', ann_file=osp.join(data_root, 'annotations/val.json'),
        metric='bbox', format_only=False)
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=val_interval or max_iters)
    cfg.val_cfg = dict(type='ValLoop')
    cfg.test_cfg = dict(type='TestLoop')
    cfg.param_scheduler = None
    cfg.optim_wrapper.optimizer.lr = 0.01
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False,
        interval=checkpoint_interval or max_iters)
    cfg.log_processor = dict(type='LogProcessor', window_size=1,
                             by_epoch=False)
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       mp_cfg=dict(mp_start_method='fork',
                                   opencv_num_threads=0),
                       dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.load_from = None
    cfg.resume = False
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=16)
    cfg.work_dir = work_dir
    # mmengine reuses visualizer and message-hub instances by name: a second
    # Runner in the same process (and second) would share the first's
    run_id = uuid.uuid4().hex[:8]
    if cfg.get('visualizer'):
        cfg.visualizer.name = f'visualizer_{run_id}'
    cfg.experiment_name = f'{osp.splitext(osp.basename(config))[0]}_{run_id}'
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world_size: int, port: int, out_dir: str,
                 fn: Callable, args: tuple) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    # a forked child can stall in the parent's intra-op thread pool
    torch.set_num_threads(1)
    result: Any
    try:
        dist.init_process_group('gloo', rank=rank, world_size=world_size)
        result = ('ok', fn(rank, world_size, *args))
    except BaseException:  # report to the parent instead of hanging it
        result = ('error', traceback.format_exc())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    with open(osp.join(out_dir, f'{rank}.pkl'), 'wb') as f:
        pickle.dump(result, f)


def dist_run(fn: Callable, world_size: int = 2, *args: Any,
             timeout: float = 300) -> List[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` forked processes
    joined by a gloo process group; return the per-rank results (picklable).
    An exception in any rank fails the caller with that rank's traceback;
    ranks still running after ``timeout`` seconds (all together) are killed."""
    ctx = mp.get_context('fork')
    port = _free_port()
    with tempfile.TemporaryDirectory() as out_dir:
        procs = [ctx.Process(target=_dist_worker,
                             args=(r, world_size, port, out_dir, fn, args))
                 for r in range(world_size)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(deadline - time.monotonic(), 0))
        for p in procs:
            if p.is_alive():
                p.kill()
        results = []
        for r in range(world_size):
            path = osp.join(out_dir, f'{r}.pkl')
            if not osp.isfile(path):
                raise RuntimeError(f'rank {r} died without a result')
            with open(path, 'rb') as f:
                status, value = pickle.load(f)
            if status != 'ok':
                raise RuntimeError(f'rank {r} failed:\n{value}')
            results.append(value)
    return results


DEMO_CONFIG = 'configs/demo/faster_rcnn_r18_alwa1_demo.py'


def tiny_demo_options(root: str, epochs: int = 2) -> List[str]:
    """``--cfg-options`` that shrink the demo config to 4 training images
    of 96x64 (2 iterations an epoch) generated into ``root``, and ALWA's
    window to 2 iterations."""
    root = root.rstrip('/') + '/'
    options = {
        'data_root': root,
        'demo_data.num_train': 4, 'demo_data.num_val': 2,
        'demo_data.img_size': '[96,64]',
        'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.alwa.rule.interval': 2,
        'default_hooks.logger.interval': 1,
        # an almost untrained model must still give boxes to evaluate
        'model.test_cfg.rcnn.score_thr': 0.0,
        'val_evaluator.ann_file': root + 'annotations/val.json',
        'test_evaluator.ann_file': root + 'annotations/val.json',
        # in-process runs: mmengine would reuse an earlier run's visualizer
        # (and write this run's scalars into that run's folder)
        'visualizer.name': f'visualizer_{uuid.uuid4().hex[:8]}',
    }
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = root
        options[f'{split}_dataloader.num_workers'] = 0
        options[f'{split}_dataloader.persistent_workers'] = False
        options[f'{split}_dataloader.batch_size'] = 2
    return [f'{k}={v}' for k, v in options.items()]


def make_ddp_cfg(cfg: Config) -> Config:
    """Make a tiny config run under the gloo process group of ``dist_run``."""
    from mmdet_alwa.utils import setup_cpu_distributed
    cfg.launcher = 'pytorch'
    setup_cpu_distributed(cfg, 'pytorch')
    return cfg
