"""Step time of Faster R-CNN with and without the non-finite loss guard.

Two copies of the same detector (same initial weights, same batches, same
random seeds, so the same work and the same weights at every step) train
through ``model.train_step``: one with mmengine's ``OptimWrapper``, one with
``NonFiniteGuardOptimWrapper``. Rounds alternate which goes first; the ratio
reported is the median over rounds of guard/plain mean step time (target
<= 1.01). On a GPU the guard's cost is one scalar device-to-host copy per
step; on a CPU it is a few microseconds.

    python benchmarks/bench_nonfinite_guard.py --width 16 --rounds 10  # tiny
    python benchmarks/bench_nonfinite_guard.py --depth 50 \
        --img-size 1000 600 --batch-size 2 --rounds 10 --iters 20  # VOC size
"""
import copy
import sys

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.config import Config

from common import (build_detector, describe, make_batches, make_parser,
                    parse_args, ratio_table, time_steps)


def main(argv=None):
    args = parse_args(make_parser(
        __doc__, config='configs/_base_/faster_rcnn_r50_voc.py', rounds=6,
        iters=3, warmup=2), argv)
    cfg = Config.fromfile(args.config)
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
    print(describe(args, 'Faster R-CNN'))
    print(ratio_table({'step time': timings}, 'plain', dict(guard=1.01)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
