"""Training-step time of Faster R-CNN with MATL's TripletRoIHead vs without.

Both detectors are built from the same config (the MATL one, and a copy
whose RoI head is mmdet's StandardRoIHead), from the same seed, and trained
on the same synthetic batches; their steps (forward + loss, backward,
optimizer step) are timed alternately (ABBA order) in one process, so that
machine noise hits both alike. Prints the median step times and their ratio
(target <= 1.05)::

    python benchmarks/bench_matl_step_time.py                    # R50, 800 px
    python benchmarks/bench_matl_step_time.py --tiny --img-size 128 --iters 10
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import tempfile
import time

import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

import mmdet_alwa  # noqa: F401
from mmdet_alwa.models.utils.box_shape import FEATURE_NAMES

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs/matl/faster_rcnn_r50_matl_voc.py')


def _shrink(model_cfg) -> None:
    """ResNet-18 with 1/4 widths and a 32-channel FPN, for a CPU smoke run."""
    model_cfg.backbone.update(depth=18, base_channels=16, init_cfg=None)
    model_cfg.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    model_cfg.rpn_head.update(in_channels=32, feat_channels=32)
    model_cfg.roi_head.bbox_roi_extractor.out_channels = 32
    model_cfg.roi_head.bbox_head.update(in_channels=32, fc_out_channels=64)


def build_models(args, box_json: str):
    cfg = Config.fromfile(args.config)
    model_cfg = cfg.model
    model_cfg.backbone.init_cfg = None  # no download; timing only
    if args.tiny:
        _shrink(model_cfg)
    model_cfg.roi_head.box_clusters = box_json
    plain_cfg = copy.deepcopy(model_cfg)
    for key in ('box_clusters', 'embed_channels', 'loss_triplet'):
        plain_cfg.roi_head.pop(key, None)
    plain_cfg.roi_head.type = 'StandardRoIHead'
    models = {}
    for name, mcfg in (('plain', plain_cfg), ('matl', model_cfg)):
        torch.manual_seed(0)
        model = MODELS.build(mcfg).to(args.device).train()
        optim = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        models[name] = (model, optim)
    return models, model_cfg.roi_head.bbox_head.num_classes


def _clock(device: str) -> float:
    """GPU: wall time. CPU: this process's CPU time, which other processes
    on a shared machine do not inflate."""
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def step(model, optim, batch, device) -> float:
    t0 = _clock(device)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim.zero_grad()
    loss.backward()
    optim.step()
    return _clock(device) - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=CONFIG)
    p.add_argument('--tiny', action='store_true',
                   help='ResNet-18 at 1/4 width (CPU smoke run)')
    p.add_argument('--img-size', type=int, default=800)
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--boxes', type=int, default=8, help='gt boxes per image')
    p.add_argument('--iters', type=int, default=20, help='timed steps each')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    args = p.parse_args(argv)
    register_all_modules()
    s = args.img_size
    with tempfile.TemporaryDirectory() as tmp:
        box_json = osp.join(tmp, 'box_labels.json')
        with open(box_json, 'w') as f:  # any 3 clusters: only time matters
            json.dump(dict(features=list(FEATURE_NAMES),
                           feature_min=[1, 1, 1, 0],
                           feature_max=[s, s, s * s, 1],
                           centroids=[[.1, .1, .01, .2], [.5, .2, .1, .7],
                                      [.6, .6, .4, .1]]), f)
        models, num_classes = build_models(args, box_json)
        batches = [demo_mm_inputs(args.batch_size, (3, s, s),
                                  num_items=[args.boxes] * args.batch_size,
                                  num_classes=num_classes)
                   for _ in range(4)]
        times = {name: [] for name in models}
        for i in range(args.warmup + args.iters):
            order = ('plain', 'matl') if i % 2 == 0 else ('matl', 'plain')
            for name in order:
                t = step(*models[name], batches[i % len(batches)],
                         args.device)
                if i >= args.warmup:
                    times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f'device {args.device}, {"tiny R18" if args.tiny else "R50-FPN"}, '
          f'{args.batch_size}x{s}x{s}, {args.boxes} boxes/img, '
          f'{args.iters} steps each')
    clock = 'wall' if args.device.startswith('cuda') else 'CPU'
    for name in models:
        print(f'  {name:6s} median {med[name] * 1e3:8.1f} ms/step ({clock})')
    print(f'  ratio matl/plain: {med["matl"] / med["plain"]:.3f} '
          '(target <= 1.05)')
    return med


if __name__ == '__main__':
    main()
