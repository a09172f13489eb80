"""Training-step time of Faster R-CNN with and without ALWA (interleaved).

One detector (the RPN of ``configs/alwa/faster_rcnn_r50_alwa1_voc.py``, sized
by ``--depth/--width``) trains through ``model.train_step`` in alternating
blocks of ``--iters`` steps: with ALWA (``LossWeightingHook`` attached to
``rpn_head.loss_cls``/``loss_bbox``, its ``before_train_iter`` and
``after_train_iter`` called around each step, as the Runner does) and without
(the hook's forward hooks removed). Rounds alternate which block goes first;
the ratio reported is the median over rounds of ALWA/plain mean step time
(target <= 1.01; the paper calls ALWA's training cost negligible). ALWA's cost
per step: one multiply per loss call, one scalar device-to-host copy and a
few Python operations in ``after_train_iter``.

    python benchmarks/bench_alwa_step_time.py --width 16 --rounds 6  # tiny
    python benchmarks/bench_alwa_step_time.py --depth 50 --width 64 \
        --img-size 1000 600 --batch-size 2 --rounds 10 --iters 20  # VOC size
"""
import argparse
import os.path as osp
import statistics
import sys
import time
from types import SimpleNamespace

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

# the detector and batches of the other step-time benchmark (same folder)
from bench_nonfinite_guard import build_model, make_batches

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=osp.join(
        REPO, 'configs/alwa/faster_rcnn_r50_alwa1_voc.py'))
    p.add_argument('--depth', type=int, default=18, choices=(18, 34, 50, 101))
    p.add_argument('--width', type=int, default=64,
                   help='ResNet base channels (64: the real R18/R50); FPN '
                        'and heads get 4x this')
    p.add_argument('--img-size', type=int, nargs=2, default=(160, 120),
                   metavar=('W', 'H'))
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--rounds', type=int, default=6)
    p.add_argument('--iters', type=int, default=3, help='steps per block')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device',
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    return p.parse_args()


def main():
    args = parse_args()
    import mmdet_alwa  # noqa: F401
    from mmdet.registry import HOOKS, OPTIM_WRAPPERS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)
    model = build_model(cfg, args.depth, args.width, 5, args.device)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='OptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)))
    hook_cfg = dict(cfg.custom_hooks[0])
    hook_cfg['rule'] = dict(hook_cfg['rule'], interval=args.iters)
    hook = HOOKS.build(hook_cfg)
    # what the hook uses of mmengine's Runner
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0,
                             message_hub=MessageHub.get_instance('bench'),
                             logger=MMLogger.get_instance('bench'))
    batches = make_batches(args.img_size, args.batch_size, args.iters)

    def run(alwa: bool, steps: int) -> float:
        if alwa:
            hook.before_run(runner)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            if alwa:
                hook.before_train_iter(runner, i)
            log_vars = model.train_step(batches[i % len(batches)], wrapper)
            # what mmengine's RuntimeInfoHook does every iteration
            {k: v.item() for k, v in log_vars.items()}
            if alwa:
                hook.after_train_iter(runner, i)
            runner.iter += 1
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        elapsed = (time.perf_counter() - start) / steps
        if alwa:
            hook.after_run(runner)  # removes the forward hooks
        return elapsed

    run(True, args.warmup)
    run(False, args.warmup)
    ratios, times = [], {True: [], False: []}
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        t = {alwa: run(alwa, args.iters) for alwa in order}
        for alwa in t:
            times[alwa].append(t[alwa])
        ratios.append(t[True] / t[False])
    print(f'Faster R-CNN R{args.depth}-FPN (width {args.width}), '
          f'{args.img_size[0]}x{args.img_size[1]} px, batch '
          f'{args.batch_size}, {args.device}, {args.rounds} rounds x '
          f'{args.iters} steps (interleaved); {hook.rule!r}')
    for alwa, name in ((False, 'plain'), (True, 'alwa')):
        print(f'  {name:<5} median step time '
              f'{statistics.median(times[alwa]):.4f} s')
    ratio = statistics.median(ratios)
    total = sum(times[True]) / sum(times[False])
    print(f'  alwa / plain step time: median of rounds {ratio:.4f}, ratio '
          f'of totals {total:.4f} (target <= 1.01: '
          f'{"met" if ratio <= 1.01 else "NOT met"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
