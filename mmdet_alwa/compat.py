"""``torchvision://NAME`` checkpoints without torchvision installed.

Nothing here runs on import: our tools call
:func:`register_torchvision_fallback` (through
:func:`mmdet_alwa.utils.prepare_run`) before they build the Runner.
"""
import os.path as osp

import mmengine
from mmengine.runner import checkpoint as _checkpoint
from mmengine.runner.checkpoint import CheckpointLoader


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


def register_torchvision_fallback() -> None:
    """Make mmengine's ``CheckpointLoader`` resolve ``torchvision://`` and
    ``modelzoo://`` with :func:`load_from_torchvision` (for this process;
    calling it again changes nothing). The download itself is mmengine's
    ``load_from_http``, and under
    :func:`mmdet_alwa.utils.safe_checkpoint_loading` it reads with
    ``weights_only=True`` like any other checkpoint."""
    CheckpointLoader.register_scheme(
        prefixes=('torchvision://', 'modelzoo://'),
        loader=load_from_torchvision, force=True)
