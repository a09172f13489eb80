"""Training-step time of each comparison balancer relative to plain mmdet.

One copy of the same detector per method (same initial weights, same batches,
same seeds) trains through ``model.train_step``; each balanced copy has its
``LossWeightingHook`` driven exactly as mmengine's Runner drives it
(``before_run`` once, ``before_train_iter`` / ``after_train_iter`` around
every step). Every round runs all methods one after another, in a rotated
order; a method's ratio is the median over rounds of its mean step time over
plain mmdet's of the same round. Targets: <= 1.01x for DWA, DTP, Guided Loss
and uncertainty weighting, <= 1.25x for GradNorm/TDB on the last shared layer.
``gradnorm_all`` is GradNorm on all shared parameters (backbone + neck, and the
RPN conv), LibMTL's way, for contrast (no target).

    python benchmarks/bench_balancers.py                  # small, CPU
    python benchmarks/bench_balancers.py --depth 50 --width 64 \
        --img-size 1000 600 --rounds 10 --iters 10        # VOC size, GPU
"""
import argparse
import copy
import statistics
import sys
import time
from types import SimpleNamespace

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

sys.path.insert(0, __file__.rsplit('/benchmarks/', 1)[0])

DETECTORS = dict(faster_rcnn='configs/balancers/faster_rcnn_r50_{}_voc.py',
                 retinanet='configs/balancers/retinanet_r50_{}_voc.py')
METHODS = ('dwa', 'dtp', 'guided', 'uncertainty', 'gradnorm', 'tdb',
           'gradnorm_all')
TARGETS = dict(dwa=1.01, dtp=1.01, guided=1.01, uncertainty=1.01,
               gradnorm=1.25, tdb=1.25)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--detectors', nargs='+', default=list(DETECTORS),
                   choices=list(DETECTORS))
    p.add_argument('--depth', type=int, default=18, choices=(18, 34, 50, 101))
    p.add_argument('--width', type=int, default=16,
                   help='ResNet base channels (64: the real model); FPN and '
                        'heads get 4x this')
    p.add_argument('--img-size', type=int, nargs=2, default=(192, 128),
                   metavar=('W', 'H'))
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--iters', type=int, default=3, help='steps per round')
    p.add_argument('--device',
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    return p.parse_args()


def shrink(model_cfg, depth, width, num_classes):
    expansion = 1 if depth < 50 else 4
    model_cfg.backbone.update(depth=depth, base_channels=width, init_cfg=None)
    model_cfg.neck.update(
        in_channels=[width * expansion * 2**i for i in range(4)],
        out_channels=4 * width)
    if 'rpn_head' in model_cfg:
        model_cfg.rpn_head.update(in_channels=4 * width,
                                  feat_channels=4 * width)
        model_cfg.roi_head.bbox_roi_extractor.out_channels = 4 * width
        model_cfg.roi_head.bbox_head.update(in_channels=4 * width,
                                            num_classes=num_classes)
    else:
        model_cfg.bbox_head.update(in_channels=4 * width,
                                   feat_channels=4 * width,
                                   num_classes=num_classes)


def make_batch(img_size, batch_size, num_classes, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    w, h = img_size
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        n = 4
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * .6, h * .6])
        wh = (torch.rand(n, 2, generator=g) * 0.3 + 0.1) * torch.tensor([w, h])
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, num_classes, (n, ), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def hook_cfg(detector, method):
    cfg = Config.fromfile(DETECTORS[detector].format(
        'gradnorm' if method == 'gradnorm_all' else method))
    hook = copy.deepcopy(cfg.custom_hooks[0])
    if method == 'gradnorm_all':
        shared = ['backbone', 'neck'] + (
            ['rpn_head.rpn_conv'] if detector == 'faster_rcnn' else [])
        hook.signals = dict(grad_norm=dict(type='grad_norm',
                                           shared_layer=shared))
        hook.name = 'gradnorm_all'
    return cfg, hook


def bench_detector(detector, args):
    from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPERS
    cfg, _ = hook_cfg(detector, 'dwa')
    model_cfg = copy.deepcopy(cfg.model)
    shrink(model_cfg, args.depth, args.width, num_classes=5)
    torch.manual_seed(0)
    base = MODELS.build(model_cfg).to(args.device)
    batch = make_batch(args.img_size, args.batch_size, 5)
    logger = MMLogger.get_instance('bench_balancers', log_level='WARNING')
    entries = {}
    for method in ('plain', ) + METHODS:
        model = copy.deepcopy(base)
        wrapper = OPTIM_WRAPPERS.build(dict(
            type='OptimWrapper', optimizer=torch.optim.SGD(
                model.parameters(), lr=0.001, momentum=0.9)))
        runner = SimpleNamespace(
            model=model, optim_wrapper=wrapper, iter=0, logger=logger,
            message_hub=MessageHub.get_instance(f'bench_{detector}_{method}'))
        hook = None
        if method != 'plain':
            hook = HOOKS.build(hook_cfg(detector, method)[1])
            hook.before_run(runner)
        entries[method] = (runner, hook)
    del base

    def run(method, steps, round_idx):
        runner, hook = entries[method]
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            torch.manual_seed(1000 * round_idx + i)  # same sampler draws
            if hook:
                hook.before_train_iter(runner, i)
            log_vars = runner.model.train_step(batch, runner.optim_wrapper)
            {k: v.item() for k, v in log_vars.items()}  # RuntimeInfoHook
            if hook:
                hook.after_train_iter(runner, i)
            runner.iter += 1
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    names = list(entries)
    for name in names:  # warm-up
        run(name, 1, -1)
    times = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        t = {n: run(n, args.iters, r) for n in order}
        for n in names:
            times[n].append(t[n] / t['plain'])
        times['plain'][-1] = t['plain']
    return {n: statistics.median(v) for n, v in times.items()}


def main():
    args = parse_args()
    import mmdet_alwa  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules()
    results = {d: bench_detector(d, args) for d in args.detectors}
    print(f'R{args.depth}-FPN (width {args.width}), {args.img_size[0]}x'
          f'{args.img_size[1]} px, batch {args.batch_size}, {args.device}, '
          f'{args.rounds} rounds x {args.iters} steps, interleaved; step time '
          f'relative to plain mmdet (median over rounds)\n')
    print('| method | ' + ' | '.join(args.detectors) + ' | target |')
    print('|---|' + '---|' * len(args.detectors) + '---|')
    print('| plain mmdet (s/step) | ' + ' | '.join(
        f'{results[d]["plain"]:.3f}' for d in args.detectors) + ' | |')
    for m in METHODS:
        target = TARGETS.get(m)
        cells = []
        for d in args.detectors:
            ratio = results[d][m]
            mark = '' if target is None else (
                ' ok' if ratio <= target else ' over')
            cells.append(f'{ratio:.3f}x{mark}')
        print(f'| {m} | ' + ' | '.join(cells) +
              f' | {"<= %.2fx" % target if target else "-"} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
