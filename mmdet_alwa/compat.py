"""Compatibility fixes between mmengine 0.10.7 and torch >= 2.6.

torch >= 2.6 calls ``torch.load`` with ``weights_only=True`` by default. An
mmengine checkpoint is a full pickle: its ``message_hub`` holds
``HistoryBuffer`` objects and numpy scalars, so resuming (and loading our own
checkpoints with ``load_from``) fails with ``UnpicklingError: Weights only load
failed``. We re-register mmengine's local-file checkpoint loader (prefix
``''``) with ``weights_only=False``, the behaviour mmengine was written for.

As with any pickle, only load checkpoints from sources you trust. Remote
schemes (``http://``, ``torchvision://``...) are left to mmengine.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint file as mmengine < torch 2.6 did."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)
