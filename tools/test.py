"""Test (evaluate) a detector checkpoint with mmdet_alwa's modules available.

Same command line as mmdet's tools/test.py (``--show-dir`` saves painted
predictions, ``--out`` dumps them); gloo DDP without CUDA as tools/train.py.
"""
import argparse
import os
import os.path as osp
import pickle
import re
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# setuptools' notice about mmengine's use of pkg_resources is not for users
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402

import mmdet_alwa  # noqa: E402,F401  (registers our modules)
from mmdet.engine.hooks.utils import trigger_visualization_hook  # noqa: E402
from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet_alwa.datasets import prepare_datasets  # noqa: E402
from mmdet_alwa.utils import (add_launch_args, load_tool_config,  # noqa: E402
                              prepare_run, safe_checkpoint_loading)

#: default of --min-weights-matched
MIN_WEIGHTS_MATCHED = 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir',
                        help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results in a window')
    parser.add_argument('--show-dir',
                        help='save painted images to <work_dir>/<timestamp>/'
                        '<show_dir>')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='the interval of show (s)')
    add_launch_args(parser)  # --cfg-options --launcher --allow-cpu-dist
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load the checkpoint as a full pickle, which can run any code: '
        'only for files you trust (same as MMDET_ALWA_UNSAFE_LOAD=1; logged '
        'as a warning). By default it loads with torch\'s weights_only=True '
        'and mmdet_alwa\'s allow-list')
    parser.add_argument(
        '--min-weights-matched', type=float, default=MIN_WEIGHTS_MATCHED,
        metavar='FRACTION',
        help='stop with an error when the checkpoint provides less than this '
        'fraction of the model\'s state_dict entries (same name and shape; '
        'default: %(default)s; 0 accepts any checkpoint)')
    args = parser.parse_args(argv)
    if not 0 <= args.min_weights_matched <= 1:
        parser.error(f'--min-weights-matched must be in [0, 1], got '
                     f'{args.min_weights_matched}')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def weights_matched(model, checkpoint: str):
    """How many of ``model``'s state_dict entries ``checkpoint`` provides
    (same name, after mmengine's ``module.`` prefix is dropped, and same
    shape): ``(matched, total)``."""
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = (model.module if is_model_wrapper(model) else model).state_dict()
    matched = sum(
        1 for k, v in own.items()
        if isinstance(state.get(k), torch.Tensor)
        and state[k].shape == v.shape)
    return matched, len(own)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options,
                           args.work_dir)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        sys.exit('error: --out must be a .pkl file')

    try:
        prepare_datasets(cfg, splits=('test',))
        prepare_run(cfg, args.launcher, allow_cpu_dist=args.allow_cpu_dist)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    try:
        with safe_checkpoint_loading(unsafe=args.unsafe_load):
            matched, total = weights_matched(runner.model, args.checkpoint)
            said = (f'checkpoint {args.checkpoint} provides {matched} of the '
                    f'model\'s {total} weights')
            if matched < args.min_weights_matched * total:
                sys.exit(f'error: {said} ({matched / max(total, 1):.0%}, '
                         f'fewer than --min-weights-matched='
                         f'{args.min_weights_matched:g}): it is not a '
                         f'checkpoint of this model')
            runner.logger.info(said)
            runner.test()
    except pickle.UnpicklingError as e:
        sys.exit(f'error: loading {args.checkpoint}: {e}')


if __name__ == '__main__':
    main()
