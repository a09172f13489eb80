"""What tools/train.py and tools/test.py do with a config's datasets before
building the Runner."""
from typing import Sequence

from mmengine.config import Config

from .check.paths import check_dataset_paths

__all__ = ['prepare_datasets']


def prepare_datasets(cfg: Config, splits: Sequence[str]) -> None:
    """Generate built-in data, then check the dataset paths of ``splits``.

    A config that names ``demo_data = dict(**generator_args)`` gets that
    dataset generated into its ``data_root`` (default ``data/demo/``) on
    first use (:func:`mmdet_alwa.datasets.demo_data.ensure_demo_dataset`).
    Then every dataset of the ``<split>_dataloader`` of each split must
    exist: :func:`~mmdet_alwa.datasets.check.check_dataset_paths` raises
    ``FileNotFoundError`` naming the missing paths.
    """
    if cfg.get('demo_data'):
        from .demo_data import ensure_demo_dataset
        ensure_demo_dataset(cfg.get('data_root', 'data/demo/'),
                            **cfg.demo_data)
    check_dataset_paths(cfg, tuple(splits))
