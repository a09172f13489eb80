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
import copy
import os.path as osp
import sys
from types import SimpleNamespace

import torch
from mmdet.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

from common import (REPO, build_detector, describe, make_batches,
                    make_parser, parse_args, ratio_table, time_steps)

DETECTORS = dict(faster_rcnn='configs/balancers/faster_rcnn_r50_{}_voc.py',
                 retinanet='configs/balancers/retinanet_r50_{}_voc.py')
METHODS = ('dwa', 'dtp', 'guided', 'uncertainty', 'gradnorm', 'tdb',
           'gradnorm_all')
TARGETS = dict(dwa=1.01, dtp=1.01, guided=1.01, uncertainty=1.01,
               gradnorm=1.25, tdb=1.25)


def hook_cfg(detector, method):
    cfg = Config.fromfile(osp.join(REPO, DETECTORS[detector].format(
        'gradnorm' if method == 'gradnorm_all' else method)))
    hook = copy.deepcopy(
        cfg.default_hooks['gradnorm' if method == 'gradnorm_all' else method])
    if method == 'gradnorm_all':
        shared = ['backbone', 'neck'] + (
            ['rpn_head.rpn_conv'] if detector == 'faster_rcnn' else [])
        hook.signals = dict(grad_norm=dict(type='grad_norm',
                                           shared_layer=shared))
        hook.name = 'gradnorm_all'
    return cfg, hook


def bench_detector(detector, args):
    cfg, _ = hook_cfg(detector, 'dwa')
    base = build_detector(cfg.model, args.depth, args.width, args.device, 5)
    batches = make_batches(args.img_size, args.batch_size, args.iters, 5,
                           args.boxes)
    logger = MMLogger.get_instance('bench_balancers', log_level='WARNING')

    def step(method, model):
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

        def run(k):
            torch.manual_seed(k)  # same sampler draws for every method
            if hook:
                hook.before_train_iter(runner, k)
            log_vars = model.train_step(batches[k % len(batches)], wrapper)
            {key: v.item() for key, v in log_vars.items()}  # RuntimeInfoHook
            if hook:
                hook.after_train_iter(runner, k)
            runner.iter += 1
        return run

    steps = {method: step(method, copy.deepcopy(base))
             for method in ('plain', ) + METHODS}
    del base
    return time_steps(steps, args)


def main(argv=None):
    p = make_parser(__doc__, config=None, width=16, img_size=(192, 128),
                    rounds=5, iters=3, warmup=1)
    p.add_argument('--detectors', nargs='+', default=list(DETECTORS),
                   choices=list(DETECTORS))
    args = parse_args(p, argv)
    results = {d: bench_detector(d, args) for d in args.detectors}
    print(f'{describe(args)}; step time relative to plain mmdet (median '
          'over rounds)\n')
    print(ratio_table(results, 'plain', TARGETS))
    return 0


if __name__ == '__main__':
    sys.exit(main())
