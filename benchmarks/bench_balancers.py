"""Training-step time of every balancer on every detector family of the
test matrix, relative to plain mmdet.

Each family is built from mmdet 3.3.0's own config (``mmdet::``), at its
full size (``--size full``: R50-FPN, RTMDet-tiny's CSPNeXt; 80 classes) or
shrunk as in ``tests/_detectors.py`` (``--size tiny``); random weights. One
copy of the same detector per method (same initial weights, same batches,
same seeds) trains through ``model.train_step`` at learning rate 0
(``--lr``), so that every copy does the same work at every step (a copy
whose weights moved would propose other boxes, and its RoI head's work would
differ with them); each balanced copy has its
``LossWeightingHook`` driven as mmengine's Runner drives it (``before_run``
once, ``before_train_iter`` / ``after_train_iter`` around every step). Every
round runs all methods of a family one after another, in a rotated order; a
method's ratio is the median over rounds of its mean step time over plain
mmdet's of the same round. ALWA and Guided Loss weight the family's first
cls/reg pair (the RPN of two-stage detectors), the other methods all of its
losses (e.g. 5 tasks for Mask R-CNN); ``gradnorm_pair`` / ``tdb_pair`` are
GradNorm / TDB on the first pair, as the configs of ``configs/balancers/``;
``gradnorm_output`` / ``tdb_output`` take the gradient norms at the shared
layer's output (``wrt='output'``) instead of its weights.
GradNorm and TDB use the default shared layer (the last one shared by the
balanced losses). The loss-only rules over TorchJD (FAMO with the
next-iteration losses, RLW, GLS, IMTL-L, STCH) and the gradient aggregators
(UPGrad, MGDA, PCGrad, IMTL-G, Aligned-MTL, DualProj, CAGrad; the Gramian at
the neck's outputs every ``--gramian-interval`` steps) weight all of the
family's losses. Targets: <= 1.01x for ALWA, DWA, DTP, Guided Loss,
uncertainty weighting and the loss-only rules, <= 1.25x for GradNorm/TDB and
for gradient aggregation (one-stage families at interval 1, two-stage at
interval 2).

    python benchmarks/bench_balancers.py --clock cpu            # all, CPU
    python benchmarks/bench_balancers.py --detectors faster_rcnn fcos \\
        --methods alwa gradnorm --rounds 2 --iters 1            # a subset
    python benchmarks/bench_balancers.py --methods upgrad mgda pcgrad \\
        --gramian-interval 2                                   # aggregation
"""
import copy
import functools
import os.path as osp
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

from common import (REPO, Timings, make_batches, make_clock, make_parser,
                    parse_args, ratio_table, time_steps)

sys.path.insert(0, osp.join(REPO, 'tests'))
from _detectors import DETECTORS, _shrink  # noqa: E402
from _helpers import _shrink_model  # noqa: E402

NUM_CLASSES = 5
LOSS_ONLY = dict(famo='FAMO', rlw='RLW', gls='GLS', imtl_l='IMTL_L',
                 stch='STCH')
AGGREGATION = dict(upgrad='UPGrad', mgda='MGDA', pcgrad='PCGrad',
                   imtl_g='IMTL_G', aligned_mtl='AlignedMTL',
                   dualproj='DualProj', cagrad='CAGrad')
TARGETS = dict(alwa=1.01, dwa=1.01, dtp=1.01, guided=1.01, uncertainty=1.01,
               gradnorm=1.25, tdb=1.25, gradnorm_output=1.25, tdb_output=1.25,
               gradnorm_pair=1.25, tdb_pair=1.25,
               **{m: 1.01 for m in LOSS_ONLY},
               **{m: 1.25 for m in AGGREGATION}, upgrad_exact=1.25,
               famo_reforward=1.5)


def _pair(det):
    cls, reg = det.pairs[0]
    return dict(cls=det.losses[cls], reg=det.losses[reg])


def _at_output(rule, det):
    return (dict(type=rule, tasks=tuple(det.losses)), det.losses,
            dict(signals=dict(grad_norm=dict(type='grad_norm', wrt='output'))))


def _all_losses(rule, det):
    extra = dict(param_group=dict(weight_decay=0.0)) \
        if rule == 'IMTL_L' else {}
    return dict(type=rule, tasks=tuple(det.losses)), det.losses, extra


# method -> (rule config, losses of the detector, extra hook options)
METHODS = dict(
    alwa=lambda det: (dict(type='ALWA', variant=1, interval=100),
                      _pair(det), {}),
    guided=lambda det: (dict(type='GuidedLoss'), _pair(det), {}),
    dwa=lambda det: (dict(type='DWA', tasks=tuple(det.losses)), det.losses,
                     {}),
    dtp=lambda det: (dict(type='DTP', tasks=tuple(det.losses)), det.losses,
                     {}),
    uncertainty=lambda det: (
        dict(type='UncertaintyWeighting', tasks=tuple(det.losses)),
        det.losses, dict(param_group=dict(weight_decay=0.0))),
    gradnorm=lambda det: (dict(type='GradNorm', tasks=tuple(det.losses)),
                          det.losses, {}),
    tdb=lambda det: (dict(type='TDB', tasks=tuple(det.losses)), det.losses,
                     {}),
    # the gradient at the shared layer's output instead of its weights
    gradnorm_output=lambda det: _at_output('GradNorm', det),
    tdb_output=lambda det: _at_output('TDB', det),
    # as the configs of configs/balancers/: the first cls/reg pair only,
    # whose last shared layer is the RPN's conv (two-stage) or the neck
    gradnorm_pair=lambda det: (dict(type='GradNorm'), _pair(det), {}),
    tdb_pair=lambda det: (dict(type='TDB'), _pair(det), {}),
    **{m: functools.partial(_all_losses, rule)
       for m, rule in {**LOSS_ONLY, **AGGREGATION}.items()},
    # FAMO with the paper's re-forward of the batch after the step
    famo_reforward=lambda det: (
        dict(type='FAMO', tasks=tuple(det.losses), losses_after='reforward'),
        det.losses, {}),
    # UPGrad with the exact Gramian of the backbone's and neck's parameters
    # (torchjd.autogram; one-stage detectors only)
    upgrad_exact=lambda det: (
        dict(type='UPGrad', tasks=tuple(det.losses)), det.losses,
        dict(exact_gramian=['backbone', 'neck'])),
)


def _no_pretrained(cfg) -> None:
    """Drop every ``init_cfg`` (no downloads; random weights time alike)."""
    if isinstance(cfg, dict):
        cfg.pop('init_cfg', None)
        for value in cfg.values():
            _no_pretrained(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _no_pretrained(value)


def build_family(name: str, size: str) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdet_alwa  # noqa: F401
    register_all_modules()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, f'{name}.py')
        with open(path, 'w') as f:
            f.write(f"_base_ = 'mmdet::{DETECTORS[name].config}'\n")
        model = Config.fromfile(path).model
    _no_pretrained(model)
    if size == 'tiny':
        _shrink_model(model)
        _shrink(name, model)
    torch.manual_seed(0)
    return MODELS.build(model).train()


def with_masks(batches):
    """Box-shaped instance masks for Mask R-CNN."""
    from mmdet.structures.mask import BitmapMasks
    for batch in batches:
        for sample in batch['data_samples']:
            h, w = sample.metainfo['img_shape']
            masks = np.zeros((len(sample.gt_instances), h, w), np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(
                    sample.gt_instances.bboxes.int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            sample.gt_instances.masks = BitmapMasks(masks, h, w)
    return batches


def bench_family(name, methods, args):
    from mmdet.registry import HOOKS, OPTIM_WRAPPERS
    det = DETECTORS[name]
    base = build_family(name, args.size).to(args.device)
    batches = make_batches(args.img_size, args.batch_size, args.iters + 1,
                           NUM_CLASSES, args.boxes)
    if det.masks:
        batches = with_masks(batches)
    logger = MMLogger.get_instance('bench_balancers', log_level='WARNING')

    def step(method, model):
        # lr 0: every copy does the same work at every step (a trained copy
        # proposes other boxes, and its RoI head's work differs with them)
        wrapper = OPTIM_WRAPPERS.build(dict(
            type='OptimWrapper', optimizer=torch.optim.SGD(
                model.parameters(), lr=args.lr, momentum=0.9)))
        runner = SimpleNamespace(
            model=model, optim_wrapper=wrapper, iter=0, logger=logger,
            message_hub=MessageHub.get_instance(f'bench_{name}_{method}'))
        hook, timer = None, in_hooks[method]
        if method != 'plain':
            rule, losses, extra = METHODS[method](det)
            if rule['type'] in ('GradNorm', 'TDB'):
                rule = dict(rule, interval=args.interval)
            if rule['type'] in AGGREGATION.values():
                rule = dict(rule, interval=args.gramian_interval)
            hook = HOOKS.build(dict(type='LossWeightingHook', name=method,
                                    rule=rule, losses=losses, **extra))
            known = timer.module_hooks(model)
            hook.before_run(runner)
            timer.wrap_module_hooks(model, known)
            hook.before_train_iter = timer.wrap(hook.before_train_iter)
            hook.after_train_iter = timer.wrap(hook.after_train_iter)

        def run(k):
            torch.manual_seed(k)  # same sampler draws for every method
            timer.start_step()
            if hook:
                hook.before_train_iter(runner, k)
            log_vars = model.train_step(batches[k % len(batches)], wrapper)
            {key: v.item() for key, v in log_vars.items()}  # RuntimeInfoHook
            if hook:
                hook.after_train_iter(runner, k)
            runner.iter += 1
        return run

    # on a GPU the in-hook clock must not synchronise (that would drain the
    # queue inside the balanced copy's step and slow it): it measures the
    # host time of the hooks, their kernels are in the step-time table
    clock = time.perf_counter if args.device.startswith('cuda') else \
        make_clock(args.clock, args.device)
    in_hooks = {method: HookClock(clock)
                for method in ('plain', ) + tuple(methods)}
    steps = {method: step(method, copy.deepcopy(base)) for method in in_hooks}
    del base
    timings = time_steps(steps, args)
    # plain's step time + the balancer's time in its hooks, round by round
    plain = timings.times['plain']
    direct = Timings({method: [
        p + h for p, h in zip(plain, timer.per_round(args.warmup,
                                                     args.iters))]
        for method, timer in in_hooks.items()})
    return timings, direct


class HookClock:
    """The time a balancer spends in its own code, step by step: the module
    hooks its ``before_run`` installed on the detector and its Runner-hook
    calls (the outermost call of a nest counts once). This misses only the
    backward of the weights' scalar products and, for uncertainty weighting,
    the optimizer's update of a few scalars."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.steps: list = []
        self._nested = False

    def start_step(self) -> None:
        self.steps.append(0.0)

    def wrap(self, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self._nested:  # inside a timed call: counted by it
                return fn(*args, **kwargs)
            self._nested = True
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self._nested = False
                self.steps[-1] += self.clock() - start
        return timed

    @staticmethod
    def _hook_dicts(model):
        # torch keeps a module's hooks in these OrderedDicts (no public API)
        for module in model.modules():
            yield module._forward_pre_hooks
            yield module._forward_hooks

    def module_hooks(self, model) -> set:
        return {(id(d), key) for d in self._hook_dicts(model) for key in d}

    def wrap_module_hooks(self, model, known: set) -> None:
        for hooks in self._hook_dicts(model):
            for key, fn in list(hooks.items()):
                if (id(hooks), key) not in known:
                    hooks[key] = self.wrap(fn)

    def per_round(self, warmup: int, iters: int) -> list:
        """Mean time per step of each round's block (after the warm-up)."""
        timed = self.steps[warmup:]
        return [sum(timed[i:i + iters]) / iters
                for i in range(0, len(timed), iters)]


def main(argv=None):
    p = make_parser(__doc__, config=None, img_size=(1024, 704), rounds=3,
                    iters=1, warmup=1, boxes=4)
    p.add_argument('--size', default='tiny', choices=('full', 'tiny'),
                   help='full: the mmdet config as it is (R50-FPN...); '
                        'tiny: shrunk as in tests/_detectors.py')
    p.add_argument('--lr', type=float, default=0.0,
                   help='SGD learning rate of the detectors (default 0: '
                        'the same work for every variant at every step)')
    p.add_argument('--interval', type=int, default=1,
                   help='GradNorm\'s and TDB\'s interval (default 1: their '
                        'weights and gradient norms every step)')
    p.add_argument('--gramian-interval', type=int, default=1,
                   help='the gradient aggregators\' interval (default 1: a '
                        'Gramian every step)')
    p.add_argument('--detectors', nargs='+', default=list(DETECTORS),
                   choices=list(DETECTORS))
    p.add_argument('--methods', nargs='+', default=[
        m for m in METHODS if m != 'upgrad_exact'], choices=list(METHODS),
        help='default: all but upgrad_exact (one-stage detectors only: '
             'torchjd.autogram cannot batch RoIAlign\'s backward)')
    args = parse_args(p, argv)
    if (args.depth, args.width) != (18, 64):
        p.error('--depth/--width do not apply here: the detectors are '
                'mmdet\'s configs at full size or shrunk (--size)')
    results, direct = {}, {}
    for family in args.detectors:
        results[family], direct[family] = bench_family(family, args.methods,
                                                       args)
        print(f'{family}: plain {1e3 * results[family].median("plain"):.0f} '
              f'ms/step', flush=True)
    w, h = args.img_size
    size = 'at full size' if args.size == 'full' else \
        'shrunk as in tests/_detectors.py'
    print(f'\nmmdet 3.3.0 configs {size}, {w}x{h} px, '
          f'batch {args.batch_size}, {args.boxes} boxes/img, {args.device}, '
          f'{args.rounds} rounds x {args.iters} steps, interleaved, '
          f'{args.clock} time; GradNorm/TDB interval {args.interval}, '
          f'gradient aggregation interval {args.gramian_interval}\n')
    print('Step time relative to plain mmdet (median over rounds):\n')
    print(ratio_table(results, 'plain', TARGETS))
    print('\n(plain step time + time in the balancer\'s hooks) / plain step '
          'time (median over rounds):\n')
    print(ratio_table(direct, 'plain', TARGETS))
    return 0


if __name__ == '__main__':
    sys.exit(main())
