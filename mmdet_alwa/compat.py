"""Compatibility fixes between mmengine 0.10.7 and torch >= 2.6.

torch >= 2.6 calls ``torch.load`` with ``weights_only=True`` by default. An
mmengine checkpoint is a full pickle: its ``message_hub`` holds
``HistoryBuffer`` objects and numpy scalars, so resuming (and loading our own
checkpoints with ``load_from``) fails with ``UnpicklingError: Weights only load
failed``. We re-register mmengine's local-file checkpoint loader (prefix
``''``) with ``weights_only=False``, the behaviour mmengine was written for.

As with any pickle, only load checkpoints from sources you trust. Remote
schemes (``http://``, ``open-mmlab://``...) are left to mmengine, but for
``torchvision://`` (see :func:`load_from_torchvision`).
"""
import os.path as osp

import mmengine
import torch
from mmengine.runner import checkpoint as _checkpoint
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint file as mmengine < torch 2.6 did."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


@CheckpointLoader.register_scheme(
    prefixes=('torchvision://', 'modelzoo://'), force=True)
def load_from_torchvision(filename: str, map_location=None) -> dict:
    """``torchvision://resnet50`` without torchvision installed.

    mmengine resolves ``torchvision://NAME`` by importing torchvision, but
    PyPI's torchvision does not install beside torch 2.13.0, so mmdet's
    ImageNet ``init_cfg`` (``torchvision://resnet50``) would fail with
    ``No module named 'torchvision'``. The URLs are those mmengine itself
    ships (``mmengine/hub/torchvision_0.12.json``) and uses for these names;
    with torchvision installed, mmengine's own loader runs.
    """
    try:
        import torchvision  # noqa: F401
    except ImportError:
        name = filename.split('://', 1)[1]
        urls = mmengine.load(
            osp.join(mmengine.__path__[0], 'hub', 'torchvision_0.12.json'))
        if name not in urls:
            raise ValueError(f'unknown torchvision model {name!r} in '
                             f'{filename!r}; known: {sorted(urls)}')
        return _checkpoint.load_from_http(urls[name],
                                          map_location=map_location)
    return _checkpoint.load_from_torchvision(filename, map_location)
