"""mmdet 3.3.0's own detector configs (``mmdet::``), shrunk for tests.

``DETECTORS`` names each family's config and its loss modules by task;
``detector_cfg`` turns it into a tiny but real run (ResNet-18 at 1/4 width or
CSPNeXt at 1/8, 32-channel necks and heads, 96x64 images, a LinearLR warm-up
as in mmdet's schedules) on the generated data of ``tests/_helpers.py``.
"""
import copy
import functools
import json
import os.path as osp
import tempfile
import uuid
from typing import Dict, List, NamedTuple, Tuple, Union

from mmengine.config import Config, ConfigDict

from _helpers import TINY_FPN, tiny_cfg
from mmdet_alwa.datasets.demo_data import DEMO_CLASSES

Losses = Dict[str, Union[str, List[str]]]


class Detector(NamedTuple):
    config: str
    losses: Losses                  # every loss of the detector, by task
    pairs: Tuple[Tuple[str, str], ...]  # (cls task, reg task) pairs
    masks: bool = False


def _stages(name, n=3):
    return [f'roi_head.bbox_head.{i}.{name}' for i in range(n)]


_RPN = dict(rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox')
_ROI = dict(cls='roi_head.bbox_head.loss_cls',
            reg='roi_head.bbox_head.loss_bbox')
_TWO_STAGE = (('rpn_cls', 'rpn_reg'), ('cls', 'reg'))
_DENSE = dict(cls='bbox_head.loss_cls', reg='bbox_head.loss_bbox')
_CTR = dict(_DENSE, ctr='bbox_head.loss_centerness')

DETECTORS = {
    'faster_rcnn': Detector('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                            dict(_RPN, **_ROI), _TWO_STAGE),
    'mask_rcnn': Detector('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                          dict(_RPN, **_ROI,
                               mask='roi_head.mask_head.loss_mask'),
                          _TWO_STAGE, masks=True),
    # one task per loss kind; each names the three stages' modules
    'cascade_rcnn': Detector('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
                             dict(_RPN, cls=_stages('loss_cls'),
                                  reg=_stages('loss_bbox')), _TWO_STAGE),
    'libra_rcnn': Detector('libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py',
                           dict(_RPN, **_ROI), _TWO_STAGE),
    'dynamic_rcnn': Detector('dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py',
                             dict(_RPN, **_ROI), _TWO_STAGE),
    'double_head': Detector('double_heads/dh-faster-rcnn_r50_fpn_1x_coco.py',
                            dict(_RPN, **_ROI), _TWO_STAGE),
    'retinanet': Detector('retinanet/retinanet_r50_fpn_1x_coco.py', _DENSE,
                          (('cls', 'reg'), )),
    'atss': Detector('atss/atss_r50_fpn_1x_coco.py', _CTR,
                     (('cls', 'reg'), )),
    'gfl': Detector('gfl/gfl_r50_fpn_1x_coco.py',
                    dict(_DENSE, dfl='bbox_head.loss_dfl'),
                    (('cls', 'reg'), )),
    'fcos': Detector('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', _CTR,
                     (('cls', 'reg'), )),
    'rtmdet': Detector('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', _DENSE,
                       (('cls', 'reg'), )),
}

#: Cascade R-CNN scales stage i's losses by stage_loss_weights[i] after the
#: loss module: d(total)/d(raw) of that call is weight x this factor
STAGE_FACTORS = {'cascade_rcnn': (1.0, 0.5, 0.25)}


def with_masks(data_root: str) -> str:
    """Write ``annotations/train_masks.json``: the generated annotations with
    each box as its polygon mask (Mask R-CNN needs masks)."""
    path = osp.join(data_root, 'annotations', 'train_masks.json')
    if not osp.isfile(path):
        coco = json.load(open(osp.join(data_root, 'annotations',
                                       'train.json')))
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            ann['segmentation'] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        with open(path, 'w') as f:
            json.dump(coco, f)
    return 'annotations/train_masks.json'


def _shrink(name: str, model: ConfigDict) -> None:
    """What ``tiny_cfg`` does not shrink: the heads beyond Faster R-CNN's."""
    if name == 'rtmdet':
        model.backbone.update(widen_factor=0.125, init_cfg=None)
        model.neck.update(in_channels=[32, 64, 128], out_channels=TINY_FPN)
        model.bbox_head.update(in_channels=TINY_FPN, feat_channels=TINY_FPN)
    neck = model.get('neck')
    if isinstance(neck, list):  # Libra R-CNN: FPN then BFP
        neck[0].update(in_channels=[16, 32, 64, 128], out_channels=TINY_FPN)
        neck[1].update(in_channels=TINY_FPN)
    roi = model.get('roi_head')
    if roi is None:
        return
    sampler = model.train_cfg.rcnn.get('sampler', {}) \
        if isinstance(model.train_cfg.rcnn, dict) else {}
    if sampler.get('neg_sampler', {}).get('type') == 'IoUBalancedNegSampler':
        # Libra R-CNN: mmdet's sampler sets floor_thr from -1 to 0 on its
        # first call, so a resumed run's first iteration would sample
        # otherwise than the uninterrupted run's; start it at 0
        sampler.neg_sampler.floor_thr = 0
    if 'conv_out_channels' in roi.bbox_head:  # Double-Head
        roi.bbox_head.update(conv_out_channels=64)
    if 'mask_head' in roi:
        roi.mask_roi_extractor.out_channels = TINY_FPN
        roi.mask_head.update(num_convs=1, in_channels=TINY_FPN,
                             conv_out_channels=TINY_FPN,
                             num_classes=len(DEMO_CLASSES))


@functools.lru_cache(maxsize=None)
def _tiny_base(name: str, data_root: str) -> Config:
    """Parse an mmdet config once (resolving ``mmdet::`` reads mmdet's
    metafiles: ~1 s)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = osp.join(tmp, f'{name}.py')
        with open(local, 'w') as f:
            f.write(f"_base_ = 'mmdet::{DETECTORS[name].config}'\n")
        cfg = tiny_cfg(local, tmp, data_root)
    _shrink(name, cfg.model)
    return cfg


def detector_cfg(name: str, work_dir: str, data_root: str, max_iters: int,
                 hooks: Dict[str, dict], checkpoint_interval: int = 1,
                 lr: float = 0.01) -> Config:
    """A tiny run of ``DETECTORS[name]`` with ``hooks`` (``default_hooks``
    entries) and a LinearLR warm-up over the run (start factor 0.1)."""
    det = DETECTORS[name]
    cfg = copy.deepcopy(_tiny_base(name, data_root))
    cfg.work_dir = work_dir
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.custom_hooks = []  # RTMDet's EMA and pipeline switch
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex[:8]}'
    cfg.visualizer.name = f'visualizer_{cfg.experiment_name}'
    cfg.default_hooks.checkpoint.update(interval=checkpoint_interval,
                                        save_last=False)
    # mmengine's gc.collect() per dataset build: ~1 s in a big process
    cfg.train_dataloader.dataset.serialize_data = False
    pipeline = cfg.train_dataloader.dataset.pipeline
    # no random flip: a resumed run sees the very images of the first
    pipeline[:] = [t for t in pipeline if t['type'] != 'RandomFlip']
    if det.masks:
        pipeline[1].update(with_mask=True)
        cfg.train_dataloader.dataset.ann_file = with_masks(data_root)
    optimizer = cfg.optim_wrapper.optimizer
    optimizer.lr = lr if optimizer.type == 'SGD' else lr / 10
    cfg.optim_wrapper.pop('clip_grad', None)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1,
                                by_epoch=False, begin=0, end=max_iters)]
    for key, hook in hooks.items():
        cfg.default_hooks[key] = hook
    return cfg

