"""Train a detector with mmdet_alwa's modules available.

Same command line as mmdet's tools/train.py; additionally it generates the
built-in demo data on first use, names missing dataset paths before anything
is built, and runs distributed training on gloo when there is no CUDA.
"""
import argparse
import os
import os.path as osp
import pickle
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# setuptools' notice about mmengine's use of pkg_resources is not for users
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner, find_latest_checkpoint  # noqa: E402

import mmdet_alwa  # noqa: E402,F401  (registers our modules)
from mmdet_alwa.engine.optimizers import amp_optim_wrapper_type  # noqa: E402
from mmdet_alwa.datasets import prepare_datasets  # noqa: E402
from mmdet_alwa.utils import (add_launch_args, load_tool_config,  # noqa: E402
                              prepare_run, safe_checkpoint_loading)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the '
        'latest checkpoint in the work directory')
    add_launch_args(parser)  # --cfg-options --launcher --allow-cpu-dist
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load checkpoints (--resume, load_from, init_cfg) as full '
        'pickles, which can run any code: only for files you trust (same as '
        'MMDET_ALWA_UNSAFE_LOAD=1; logged as a warning). By default they load '
        'with torch\'s weights_only=True and mmdet_alwa\'s allow-list')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options,
                           args.work_dir)
    if args.amp:
        if not torch.cuda.is_available():
            sys.exit('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper); '
                     'drop it to train in fp32 on the CPU')
        # keeps our non-finite loss guard when the config has it
        cfg.optim_wrapper.type = amp_optim_wrapper_type(
            cfg.optim_wrapper.get('type', 'OptimWrapper'))
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            sys.exit('--auto-scale-lr needs auto_scale_lr.base_batch_size '
                     'in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    try:
        prepare_datasets(cfg, splits=('train', 'val'))
        prepare_run(cfg, args.launcher, allow_cpu_dist=args.allow_cpu_dist)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    try:
        with safe_checkpoint_loading(unsafe=args.unsafe_load):
            runner.train()
    except pickle.UnpicklingError as e:
        sys.exit(f'error: {_checkpoint_of(cfg)}: {e}')


def _checkpoint_of(cfg) -> str:
    """The checkpoint this run loads, for an error message."""
    if cfg.get('resume') and not cfg.get('load_from'):
        latest = find_latest_checkpoint(cfg.work_dir)
        if latest:
            return f'resuming from {latest}'
    if cfg.get('load_from'):
        return f'loading {cfg.load_from}'
    return 'loading a checkpoint named in the model\'s init_cfg'


if __name__ == '__main__':
    main()
