"""What tools/train.py and tools/test.py do before building the Runner
(after :func:`mmdet_alwa.datasets.prepare_datasets`)."""
import argparse
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction

from ..compat import register_torchvision_fallback
from .dist_utils import setup_cpu_distributed


def prepare_run(cfg: Config, launcher: str,
                allow_cpu_dist: bool = False) -> None:
    """Resolve ``torchvision://`` checkpoints without torchvision
    (:func:`mmdet_alwa.compat.register_torchvision_fallback`), set up CPU DDP.

    ``allow_cpu_dist`` (the tools' ``--allow-cpu-dist``) lets distributed
    training run on CPU processes although the environment says GPUs were
    expected (see :func:`~mmdet_alwa.utils.dist_utils.setup_cpu_distributed`).
    """
    # mmdet's ImageNet init_cfg (torchvision://resnet50) without torchvision
    register_torchvision_fallback()
    setup_cpu_distributed(cfg, launcher, allow_cpu=allow_cpu_dist)


def load_tool_config(config: str, launcher: str,
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None) -> Config:
    """Load a config as mmdet's tools do: ``--cfg-options`` merged, work dir
    from the command line, else the config, else ``work_dirs/<name>``."""
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """The flags ``tools/train.py`` and ``tools/test.py`` share with mmdet's:
    ``--cfg-options``, ``--launcher``, ``--local-rank`` (torch.distributed's
    old launcher), and ours, ``--allow-cpu-dist``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (mmdet syntax)')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument(
        '--allow-cpu-dist', action='store_true',
        help='with --launcher pytorch/slurm, run CPU processes on gloo even '
        'though CUDA_VISIBLE_DEVICES or slurm says GPUs were given '
        '(same as MMDET_ALWA_ALLOW_CPU_DIST=1)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
