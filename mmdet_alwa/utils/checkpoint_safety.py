"""Load checkpoints without letting their pickle run code.

A ``.pth`` file is a pickle, and a pickle can call any function while it is
read. torch >= 2.6 reads with ``weights_only=True`` by default: only tensors,
containers and the globals of an allow-list are rebuilt, anything else is an
``UnpicklingError``. An mmengine checkpoint also holds its message hub
(``HistoryBuffer`` objects, numpy arrays and scalars), which that default
refuses, so resuming needs those few globals allowed:
:data:`CHECKPOINT_SAFE_GLOBALS`, found by saving real checkpoints with our
Runner (a ``LossWeightingHook`` of each rule, the MATL head, the
``NonFiniteGuardOptimWrapper``, the SimCLR model) and listing what
``torch.serialization.get_unsafe_globals_in_checkpoint`` reports.

:func:`safe_checkpoint_loading` allows them for the duration of a ``with``
block; our tools wrap ``runner.train()`` / ``runner.test()`` in it::

    with safe_checkpoint_loading():
        runner.train()

Importing mmdet_alwa changes nothing in torch or mmengine; the scope is the
``with`` block. Loading a checkpoint that needs more (an old or foreign file,
or a malicious one) is an explicit opt-in: ``unsafe=True`` (our tools'
``--unsafe-load``) or the environment variable ``MMDET_ALWA_UNSAFE_LOAD=1``;
it is logged as a WARNING each time, and only for that block.
"""
import contextlib
import logging
import os
import pickle
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

UNSAFE_ENV = 'MMDET_ALWA_UNSAFE_LOAD'
#: torch honours these per ``torch.load`` call made without ``weights_only``
#: (as mmengine's loaders do); the first one also when a caller passes
#: ``weights_only=False``.
TORCH_FORCE_SAFE = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'
TORCH_FORCE_UNSAFE = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
#: the first torch whose ``torch.load`` defaults to ``weights_only=True``
MIN_TORCH = (2, 6)

_TRUE = ('1', 'true', 'yes', 'y', 'on')  # torch's, and 'on'
_FALSE = ('', '0', 'false', 'no', 'n', 'off')
#: what ``HistoryBuffer.__getstate__`` pickles: its statistics methods,
#: which Python writes as ``getattr(HistoryBuffer, name)``
_HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def _history_buffer_getattr(obj, name: str):
    """``builtins.getattr`` as mmengine's checkpoints use it, and no more.

    A ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; torch's allow-list can only allow
    ``getattr`` whole, which would hand any attribute of any allowed object
    to a crafted pickle. This stands in for it under the same name.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'mmdet_alwa safe checkpoint loading: the checkpoint asks for '
        f'getattr({obj!r}, {name!r}); only HistoryBuffer\'s statistics '
        f'methods {_HISTORY_BUFFER_METHODS} are allowed')


def _numpy_core():
    """numpy >= 2 keeps ``multiarray`` in ``numpy._core``, numpy 1 in
    ``numpy.core``; pickles name whichever wrote them."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def checkpoint_safe_globals() -> List[SafeGlobal]:
    """The allow-list: the globals an mmengine/mmdet/mmdet_alwa checkpoint
    holds beyond what torch allows by default (tensors, ``OrderedDict``,
    ``Counter``...).

    * ``mmengine.logging.history_buffer.HistoryBuffer`` and its statistics
      methods (through :func:`_history_buffer_getattr`, as
      ``builtins.getattr``): the message hub's scalars;
    * numpy's ``ndarray``, ``dtype``, the dtype classes of ``numpy.dtypes``,
      ``multiarray._reconstruct`` and ``multiarray.scalar`` (under both
      numpy 1's and numpy 2's module names): the scalars and arrays in those
      buffers and in the runtime info.
    """
    multiarray = _numpy_core()
    allowed: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed.append((multiarray._reconstruct, f'{module}._reconstruct'))
        allowed.append((multiarray.scalar, f'{module}.scalar'))
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes)
                    if name.endswith('DType')]
    return allowed


#: see :func:`checkpoint_safe_globals`
CHECKPOINT_SAFE_GLOBALS = checkpoint_safe_globals()


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, '').strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'mmdet_alwa: environment variable {name}={value!r} is '
                     f'neither true ({"/".join(_TRUE)}) nor false '
                     f'({"/".join(_FALSE[1:])} or unset)')


def unsafe_load_requested(unsafe: bool = False) -> Optional[str]:
    """Who asked for full-pickle loading: ``'--unsafe-load'``,
    ``'MMDET_ALWA_UNSAFE_LOAD=1'``, ``'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1'``
    (torch honours that one anyway), or ``None``."""
    if unsafe:
        return '--unsafe-load'
    if _env_flag(UNSAFE_ENV):
        return f'{UNSAFE_ENV}=1'
    if _env_flag(TORCH_FORCE_UNSAFE):
        return f'{TORCH_FORCE_UNSAFE}=1'
    return None


def _torch_version() -> Tuple[int, int]:
    major, minor = torch.__version__.split('+')[0].split('.')[:2]
    return int(major), int(''.join(c for c in minor if c.isdigit()) or 0)


@contextlib.contextmanager
def _env(name: str, value: Optional[str]) -> Iterator[None]:
    """Set (or, with ``None``, remove) an environment variable for a block."""
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


_REFUSED = (
    'mmdet_alwa: the checkpoint was refused by the safe loader '
    '(torch.load weights_only=True with mmdet_alwa\'s allow-list). A '
    'checkpoint that needs more can run any code while it is read; if you '
    'trust its source, load it with --unsafe-load (our tools) or '
    f'{UNSAFE_ENV}=1.')


@contextlib.contextmanager
def safe_checkpoint_loading(unsafe: bool = False,
                            logger: str = 'current') -> Iterator[None]:
    """Every ``torch.load`` in the block reads with ``weights_only=True``
    and :data:`CHECKPOINT_SAFE_GLOBALS` allowed.

    Within the block ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``, so a caller that
    passes ``weights_only=False`` is refused as well. A refused checkpoint
    raises ``pickle.UnpicklingError`` with torch's message (which names the
    global) and how to opt in.

    Args:
        unsafe (bool): load full pickles instead (``weights_only=False``,
            through ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the block).
            The environment variable ``MMDET_ALWA_UNSAFE_LOAD=1`` (or torch's
            ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) does the same. Logged as
            a WARNING on entry.
        logger: mmengine logger for that warning.

    Raises:
        RuntimeError: torch older than 2.6 without ``unsafe`` (its
            ``torch.load`` and safe-globals API are not those relied on).
        ValueError: an environment variable above is neither true nor false,
            or both of torch's force variables are set.
    """
    who = unsafe_load_requested(unsafe)
    if who is not None:
        if _env_flag(TORCH_FORCE_SAFE):
            raise ValueError(
                f'mmdet_alwa: {who} asks for full-pickle loading, but '
                f'{TORCH_FORCE_SAFE}=1 is set in the environment; unset one')
        print_log(
            f'Loading checkpoints as full pickles (weights_only=False), as '
            f'asked by {who}: a checkpoint can run any code while it is read. '
            f'Load only checkpoints whose source you trust.',
            logger=logger, level=logging.WARNING)
        with _env(TORCH_FORCE_UNSAFE, '1'):
            yield
        return
    if _torch_version() < MIN_TORCH:
        raise RuntimeError(
            f'mmdet_alwa safe checkpoint loading needs torch >= '
            f'{".".join(map(str, MIN_TORCH))} (weights_only loading with an '
            f'allow-list); this is torch {torch.__version__}. Upgrade torch, '
            f'or, for checkpoints you trust, pass --unsafe-load or set '
            f'{UNSAFE_ENV}=1.')
    already = set(torch.serialization.get_safe_globals())
    added = [g for g in CHECKPOINT_SAFE_GLOBALS if g not in already]
    try:
        with _env(TORCH_FORCE_SAFE, '1'), \
                torch.serialization.safe_globals(added):
            yield
    except pickle.UnpicklingError as e:
        # torch's refusal (not another pickle's error, nor ours again)
        if 'Weights only load failed' not in str(e) or _REFUSED in str(e):
            raise
        raise pickle.UnpicklingError(f'{_REFUSED}\n{e}') from e
