"""Tensor operations per training iteration that each balancer adds to plain
mmdet: a count that does not depend on the machine.

On a GPU a balancer's hooks cost mostly the launches of their small
kernels (and host syncs: ``gpu_check.py``), not arithmetic; every ATen
operation dispatched is at most one launch. This script drives each family
of the test matrix with each balancer's ``LossWeightingHook`` as
``gpu_check.py`` does (lr 0, the same batches) and counts the ATen
operations of whole training iterations (``TorchDispatchMode``), minus plain
mmdet's. DTP runs its device path (``compact=False``).

    python benchmarks/count_ops.py                       # tiny, CPU
    python benchmarks/count_ops.py --detectors faster_rcnn --size full
"""
import argparse
import os.path as osp
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

METHODS = ('alwa', 'guided', 'dwa', 'uncertainty', 'dtp', 'gradnorm')


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_iter(family: str, method, size: str, device: str, img_size,
                 iters: int = 3) -> float:
    import gpu_check
    step, _ = gpu_check._drive(family, method, size, device, img_size,
                               iters + 1, 1)
    step(0)  # warm-up: lazy state, first-call paths
    counter = OpCounter()
    with counter:
        for k in range(1, iters + 1):
            step(k)
    return counter.count / iters


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--detectors', nargs='+',
                   default=['faster_rcnn', 'retinanet'])
    p.add_argument('--methods', nargs='+', default=list(METHODS))
    p.add_argument('--size', default='tiny', choices=('tiny', 'full'))
    p.add_argument('--img-size', type=int, nargs=2, default=(160, 128),
                   metavar=('W', 'H'))
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    rows = {}
    for family in args.detectors:
        plain = ops_per_iter(family, None, args.size, args.device,
                             args.img_size, args.iters)
        rows[family] = (plain, {
            m: ops_per_iter(family, m, args.size, args.device, args.img_size,
                            args.iters) - plain for m in args.methods})
    print(f'ATen operations per training iteration added to plain mmdet '
          f'({args.size}, {args.img_size[0]}x{args.img_size[1]}, '
          f'{args.device}, mean of {args.iters} iterations)\n')
    print('| method | ' + ' | '.join(rows) + ' |')
    print('|---|' + '---|' * len(rows))
    print('| plain (ops/iter) | ' + ' | '.join(
        f'{plain:.0f}' for plain, _ in rows.values()) + ' |')
    for m in args.methods:
        print(f'| {m} | ' + ' | '.join(
            f'+{added[m]:.0f}' for _, added in rows.values()) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
