"""Step time of Faster R-CNN with and without the non-finite loss guard.

Two copies of the same detector (same initial weights, same batches, same
random seeds, so the same work and the same weights at every step) train
through ``model.train_step``: one with mmengine's ``OptimWrapper``, one with
``NonFiniteGuardOptimWrapper``. Rounds alternate which goes first; the ratio
reported is the median over rounds of guard/plain mean step time (target
<= 1.01). The guard's cost is one scalar device-to-host copy per step and
one copy of the model's buffers (BN statistics: 161 tensors at R50) per
update, taken before the forward pass so that a skipped update can restore
them; the script also times that copy alone and prints its share of a plain
step. ``--train-bn`` puts the backbone's BatchNorm in training mode
(``norm_eval=False``, as when training from scratch), where the buffers
change every step (the copy costs the same either way).

    python benchmarks/bench_nonfinite_guard.py --width 16 --rounds 10  # tiny
    python benchmarks/bench_nonfinite_guard.py --depth 50 \
        --img-size 1000 600 --batch-size 2 --rounds 10 --iters 20  # VOC size
"""
import copy
import sys

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.config import Config

from mmdet_alwa.engine.optimizers import BufferSnapshot

from common import (build_detector, describe, make_batches, make_clock,
                    make_parser, parse_args, ratio_table, time_steps)


def main(argv=None):
    parser = make_parser(
        __doc__, config='configs/_base_/faster_rcnn_r50_voc.py', rounds=6,
        iters=3, warmup=2)
    parser.add_argument('--train-bn', action='store_true',
                        help='backbone BatchNorm in training mode')
    args = parse_args(parser, argv)
    cfg = Config.fromfile(args.config)
    if args.train_bn:
        cfg.model.backbone.norm_eval = False
    # both copies of one model: neither keeps the original's allocations
    base = build_detector(cfg.model, args.depth, args.width, args.device, 5)
    wrappers = {}
    for name, wtype in (('plain', 'OptimWrapper'),
                        ('guard', 'NonFiniteGuardOptimWrapper')):
        model = copy.deepcopy(base)
        wrappers[name] = (model, OPTIM_WRAPPERS.build(dict(
            type=wtype, optimizer=torch.optim.SGD(
                model.parameters(), lr=0.01, momentum=0.9))))
    del base
    batches = make_batches(args.img_size, args.batch_size, args.iters, 5,
                           args.boxes)

    def step(name):
        model, wrapper = wrappers[name]

        def run(k):
            torch.manual_seed(k)  # same sampler draws: same work and weights
            log_vars = model.train_step(batches[k % len(batches)], wrapper)
            # what mmengine's RuntimeInfoHook does every iteration
            {key: v.item() for key, v in log_vars.items()}
        return run

    timings = time_steps({name: step(name) for name in wrappers}, args)
    print(describe(args, 'Faster R-CNN') +
          (', backbone BN training' if args.train_bn else ''))
    print(ratio_table({'step time': timings}, 'plain', dict(guard=1.01)))
    copy_s = time_buffer_copy(wrappers['guard'][0], args)
    print(f'buffer copy alone (part of guard): {1e3 * copy_s:.3f} ms per '
          f'update = {100 * copy_s / timings.median("plain"):.3f}% of a '
          f'plain step')
    return 0


def time_buffer_copy(model, args, repeats=200):
    """Mean time of the guard's per-update copy of the model's buffers."""
    snapshot = BufferSnapshot()
    snapshot.take(model)  # allocates; later takes reuse the storage
    clock = make_clock(args.clock, args.device)
    start = clock()
    for _ in range(repeats):
        snapshot.take(model)
    return (clock() - start) / repeats


if __name__ == '__main__':
    sys.exit(main())
