"""Check that this environment can train with mmdet_alwa (a doctor in the
spirit of mmdet's ``collect_env``).

Prints the versions (python, torch and its CUDA, mmcv, mmengine, mmdet,
mmdet_alwa, numpy, opencv), then checks: the installed versions are in
mmdet_alwa's ranges; mmcv's compiled ops load; mmcv's nms and RoIAlign
(forward and backward) give hand-worked values on the CPU and, with CUDA, on
the GPU and the same as on the CPU; which backend distributed training would
use (and "GPUs expected but torch has no CUDA"); our modules are registered.
Exits 1 when a check fails, with a one-line fix under each failure.

    python tools/misc/check_install.py                # CPU or GPU
    python tools/misc/check_install.py --expect-cuda  # no CUDA is a failure

It never calls ``mmcv.ops.get_compiling_cuda_version`` (it can segfault with
a CUDA build of mmcv 2.1.0); the kernels themselves are run instead.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
# setuptools' notice about mmengine's use of pkg_resources is not for users
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmdet_alwa.utils.env_check import format_report, run_checks  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check the mmdet_alwa installation (versions, mmcv ops '
        'and kernels, CUDA, distributed backend, registration)')
    parser.add_argument('--expect-cuda', action='store_true',
                        help='fail when torch cannot use CUDA or mmcv has no '
                        'CUDA kernels (what scripts/install.sh runs with '
                        'FORCE_CUDA=1)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    versions, checks = run_checks(expect_cuda=args.expect_cuda)
    print(format_report(versions, checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == '__main__':
    sys.exit(main())
