"""What tools/train.py and tools/test.py do before building the Runner."""
from typing import Sequence

from mmengine.config import Config

from .data_check import check_dataset_paths
from .dist_utils import setup_cpu_distributed


def prepare_run(cfg: Config, launcher: str, splits: Sequence[str]) -> None:
    """Generate built-in data, check dataset paths, set up CPU DDP.

    A config that names ``demo_data = dict(out_dir=..., **generator_args)``
    gets that dataset generated on first use (see
    :func:`mmdet_alwa.datasets.demo_data.ensure_demo_dataset`).
    """
    if cfg.get('demo_data'):
        from mmdet_alwa.datasets.demo_data import ensure_demo_dataset
        ensure_demo_dataset(**cfg.demo_data)
    check_dataset_paths(cfg, tuple(splits))
    setup_cpu_distributed(cfg, launcher)
