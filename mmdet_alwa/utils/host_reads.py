"""Count the host reads of tensors made by a package's own code.

On a GPU every ``.item()``, ``.tolist()``, ``float(t)``, ``bool(t)``,
``int(t)``, ``nonzero()``, ``.cpu()``, ``.numpy()`` of a device tensor waits
for the device to finish the work queued so far (a host sync) and stalls the
pipeline. :func:`count_host_reads` counts those calls and attributes each to
the innermost stack frame outside torch: a call is counted when that frame's
file lies under ``package_root`` (default: the ``mmdet_alwa`` package), so
reads made by mmdet, mmengine or a test do not count, while a read that torch
makes on behalf of our code (``'{:.3f}'.format(t)`` reads through
``Tensor.item``) does.

On a CPU every tensor is a host tensor and nothing syncs; the calls are
counted all the same, which is what lets a CPU-only CI hold the GPU budget
(``tests/test_engine/test_host_reads.py``, docs/balancers.md, "Host reads").
On a GPU, ``torch.cuda.set_sync_debug_mode('warn')`` names the syncs that
really happen; the counter tells which of them are ours.

Usage::

    with count_host_reads() as reads:
        train_some_iterations()
    print(reads.total, reads.report())

``reads.enabled = False`` pauses the count (e.g. outside the training
iterations). Nested calls (``Tensor.__format__`` calling ``item``) count
once. The wrappers are removed on exit; the context is not reentrant and
not meant for production runs.
"""
import functools
import os
import os.path as osp
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch

__all__ = ['HostReads', 'count_host_reads', 'READ_METHODS']

#: ``torch.Tensor`` methods that copy a tensor's value to the host
READ_METHODS = ('item', 'tolist', '__bool__', '__float__', '__int__',
                '__index__', 'nonzero', 'cpu', 'numpy')
#: functions of the ``torch`` namespace that do
READ_FUNCTIONS = ('nonzero', )

_TORCH_DIR = osp.dirname(osp.abspath(torch.__file__)) + os.sep
_THIS_FILE = osp.abspath(__file__)
_DEFAULT_ROOT = osp.dirname(osp.dirname(_THIS_FILE))
_state = threading.local()
_active = False


class HostReads:
    """The reads counted by :func:`count_host_reads`.

    Attributes:
        sites (Counter): ``'path:line (method)'`` -> number of reads, for
            the reads attributed to the package.
        total (int): the number of those reads.
        enabled (bool): set to False to pause counting.
    """

    def __init__(self, package_root: str) -> None:
        self.package_root = osp.abspath(package_root).rstrip(os.sep) + os.sep
        self.sites: Counter = Counter()
        self.enabled = True

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def reset(self) -> None:
        """Forget the reads counted so far."""
        self.sites.clear()

    def report(self, limit: Optional[int] = None) -> str:
        """One line per call site, most frequent first."""
        lines = [f'{n:6d}  {site}'
                 for site, n in self.sites.most_common(limit)]
        return '\n'.join(lines) if lines else '(no reads)'

    def _record(self, method: str, frame) -> None:
        site = _attribute(frame)
        if site is None:
            return
        path, line = site
        if path.startswith(self.package_root) and path != _THIS_FILE:
            rel = osp.relpath(path, osp.dirname(self.package_root.rstrip(
                os.sep)))
            self.sites[f'{rel}:{line} ({method})'] += 1


def _attribute(frame) -> Optional[Tuple[str, int]]:
    """The file and line of the innermost frame outside torch (and outside
    this module)."""
    while frame is not None:
        path = osp.abspath(frame.f_code.co_filename)
        if not path.startswith(_TORCH_DIR) and path != _THIS_FILE:
            return path, frame.f_lineno
        frame = frame.f_back
    return None


def _wrap(original, method: str, counter: HostReads):

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if getattr(_state, 'depth', 0) or not counter.enabled:
            return original(*args, **kwargs)
        _state.depth = 1
        try:
            counter._record(method, sys._getframe(1))
            return original(*args, **kwargs)
        finally:
            _state.depth = 0

    return wrapper


@contextmanager
def count_host_reads(package_root: Optional[str] = None
                     ) -> Iterator[HostReads]:
    """Count the host reads made from ``package_root``'s files (default:
    the ``mmdet_alwa`` package) while the context is open.

    Wraps :data:`READ_METHODS` of ``torch.Tensor`` and ``torch.nonzero``
    (``Tensor.any()``/``all()`` give tensors: their ``bool()`` is the read);
    restores them on exit, also on an error. A second, nested context is a
    ``RuntimeError``.
    """
    global _active
    if _active:
        raise RuntimeError('count_host_reads: already counting (the context '
                           'is not reentrant)')
    counter = HostReads(package_root or _DEFAULT_ROOT)
    saved: List[Tuple[object, str, object]] = []
    _active = True
    try:
        for name in READ_METHODS:
            original = torch.Tensor.__dict__.get(name)
            inherited = original is None
            if inherited:
                original = getattr(torch.Tensor, name)
            saved.append((torch.Tensor, name, None if inherited else original))
            setattr(torch.Tensor, name, _wrap(original, name, counter))
        for name in READ_FUNCTIONS:
            original = getattr(torch, name)
            saved.append((torch, name, original))
            setattr(torch, name, _wrap(original, f'torch.{name}', counter))
        yield counter
    finally:
        for owner, name, original in reversed(saved):
            if original is None:  # inherited from the C base: remove ours
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        _active = False
