"""Walk a config's dataset wrappers; early, readable errors for dataset
paths that do not exist (before the Runner: :func:`~mmdet_alwa.datasets.
prepare_datasets`, called by tools/train.py and tools/test.py)."""
import os.path as osp
from typing import Iterator, List, Tuple

from mmengine.config import Config

README_SECTION = 'README.md, section "Preparing datasets"'


def iter_leaf_datasets(cfg: dict, _parents: Tuple[dict, ...] = ()
                       ) -> Iterator[Tuple[dict, Tuple[dict, ...]]]:
    """Every leaf dataset config inside wrappers, with its wrappers.

    Wrappers are the configs with ``datasets`` (mmengine's
    ``ConcatDataset``...) or a ``dataset`` dict (``RepeatDataset``,
    ``ClassBalancedDataset``, ``MultiImageMixDataset``...). Yields
    ``(leaf, parents)``, ``parents`` from the outermost wrapper inwards,
    in the order the wrappers concatenate their datasets.
    """
    if 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from iter_leaf_datasets(sub, _parents + (cfg, ))
    elif isinstance(cfg.get('dataset'), dict):
        yield from iter_leaf_datasets(cfg['dataset'], _parents + (cfg, ))
    else:
        yield cfg, _parents


def missing_dataset_paths(cfg: Config,
                          splits: Tuple[str, ...] = ('train', 'val', 'test')
                          ) -> List[str]:
    """Paths that the config's datasets read and that do not exist."""
    missing = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            continue
        for ds, _ in iter_leaf_datasets(loader['dataset']):
            root = ds.get('data_root') or ''
            if '://' in root:  # remote backends are not ours to check
                continue
            # a missing root is named once, not with every file under it
            if root and not osp.exists(root):
                path = root
            elif ds.get('ann_file') and \
                    not osp.exists(osp.join(root, ds['ann_file'])):
                path = osp.join(root, ds['ann_file'])
            else:
                continue
            if path not in missing:
                missing.append(path)
    return missing


def check_dataset_paths(cfg: Config, splits=('train', 'val', 'test')) -> None:
    """Raise ``FileNotFoundError`` naming the missing dataset paths."""
    missing = missing_dataset_paths(cfg, splits)
    if missing:
        listing = '\n  '.join(missing)
        raise FileNotFoundError(
            f'dataset path(s) not found:\n  {listing}\n'
            f'Download and lay out the dataset as described in '
            f'{README_SECTION}, or point the dataloaders\' data_root at '
            f'it (a config inheriting this one, or --cfg-options).')
