"""Optimizer wrappers that refuse to apply a non-finite loss.

One NaN/inf loss poisons the weights for good (and the momentum buffers with
them) and every later loss is NaN. ``NonFiniteGuardOptimWrapper`` checks the
total loss of each iteration before the optimizer step:

* ``nonfinite_policy='raise'`` (default): the step is not taken and training
  stops with :class:`NonFiniteLossError` naming the iteration, the
  micro-batch of the accumulation window, the loss keys that were not finite
  and the image files of the batch (those two come from
  :class:`~mmdet_alwa.engine.hooks.NonFiniteGuardHook`, which raises at the
  end of that iteration; without the hook the wrapper raises at once with the
  iteration only).
* ``nonfinite_policy='skip'``: the update is skipped and training goes on;
  after ``max_consecutive_skips`` skipped updates in a row it raises.

A skipped update leaves the model as it was before it: parameters, optimizer
state (momentum, Adam moments, step counts), gradients (cleared) and
**buffers** (BatchNorm running statistics, ``num_batches_tracked``, memory
banks): the wrapper copies every buffer when the first micro-batch of an
update enters :meth:`optim_context` (before its forward pass; mmengine's and
mmdet's ``train_step`` enter it) and copies them back when the update is
skipped (:class:`~.buffer_snapshot.BufferSnapshot`).

**Gradient accumulation** (``accumulative_counts=N``): one update is a window
of N micro-batches (iterations). A non-finite loss in any of them voids the
whole window: the gradients so far are cleared and the buffers restored at
once; the window's remaining micro-batches still run forward and backward
(DDP needs every rank in the gradient all-reduce of the window's last
micro-batch, and the iteration count stays aligned with mmengine's windows),
then at the window's end their gradients are cleared, the buffers restored
again to their state before the window's first micro-batch, and no step is
taken. ``num_skipped`` counts skipped updates (windows), ``num_nonfinite``
non-finite micro-batches.

Design notes:

* The backward pass is run even for a bad loss, then its gradients are
  discarded: under DDP every rank must take part in the gradient all-reduce,
  and DDP with ``find_unused_parameters=True`` fails at the next iteration
  when a backward pass was left out.
* Under DDP the "is finite" flag is all-reduced (min) every micro-batch, so
  that all ranks void the same windows and skip or raise together;
  otherwise the NaN of one rank would reach the others through the averaged
  gradients.
* The check costs one scalar device-to-host copy per iteration, after the
  backward pass (mmengine reads the losses back every iteration anyway); the
  buffer copy one fused copy per update.
* Only the loss is checked: a finite loss with non-finite gradients (rare;
  e.g. ``sqrt`` at 0) is left to ``clip_grad`` / AMP's ``GradScaler``.
* The parameter scheduler is not held back: it steps every iteration, as
  mmengine's ``ParamSchedulerHook`` does with or without accumulation.

``NonFiniteGuardAmpOptimWrapper`` is the same guard on mmengine's
``AmpOptimWrapper`` (whose loss scaler already skips steps with inf/NaN
*gradients* from fp16 overflow, but not a non-finite loss from the forward
pass). :func:`amp_optim_wrapper_type` maps one to the other for ``--amp``.
"""
import logging
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch
from mmengine import dist
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import nn

from mmdet.registry import OPTIM_WRAPPERS
from mmdet_alwa.weighting.validation import check_int
from .buffer_snapshot import BufferSnapshot

__all__ = ['NonFiniteLossError', 'NonFiniteGuardOptimWrapper',
           'NonFiniteGuardAmpOptimWrapper', 'amp_optim_wrapper_type']

POLICIES = ('raise', 'skip')


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a non-finite loss (see the message for where)."""


class NonFiniteGuardMixin:
    """The guard, shared by the plain and the AMP wrapper.

    Args:
        nonfinite_policy (str): ``'raise'`` or ``'skip'``.
        max_consecutive_skips (int): under ``'skip'``, raise when this many
            updates (accumulation windows) in a row were skipped (>= 1).
        **kwargs: the arguments of the wrapped mmengine wrapper
            (``optimizer``, ``accumulative_counts``, ``clip_grad``...).

    Attributes:
        num_skipped (int): updates (accumulation windows) skipped so far in
            this process (the hook keeps the total across resumes in the
            message hub).
        num_nonfinite (int): micro-batches (iterations) with a non-finite
            loss so far in this process.
        consecutive_skips (int): skipped updates in a row, up to now.
        nonfinite_pending (bool): the current iteration's loss was not
            finite; the hook reads and clears it in ``after_train_iter``.
        hook_attached (bool): set by ``NonFiniteGuardHook`` in
            ``before_train``; decides who raises.
        batch_files (list[str]): image files of the current batch (set by the
            hook), for the error message.
    """

    def __init__(self, *args, nonfinite_policy: str = 'raise',
                 max_consecutive_skips: int = 10, **kwargs) -> None:
        if nonfinite_policy not in POLICIES:
            raise ValueError(f'nonfinite_policy must be one of {POLICIES}, '
                             f'got {nonfinite_policy!r}')
        check_int('max_consecutive_skips', max_consecutive_skips)
        super().__init__(*args, **kwargs)
        self.nonfinite_policy = nonfinite_policy
        self.max_consecutive_skips = max_consecutive_skips
        self.num_skipped = 0
        self.num_nonfinite = 0
        self.consecutive_skips = 0
        self.nonfinite_pending = False
        self.hook_attached = False
        self.batch_files: List[str] = []
        self._buffers = BufferSnapshot()
        self._window_open = False  # buffers copied for the current window
        self._window_void = False  # a micro-batch of it was not finite
        self._micro_batch = 0  # of the last non-finite loss
        self._warned_no_context = False

    @contextmanager
    def optim_context(self, model: nn.Module):
        """mmengine's context (``no_sync`` while accumulating; autocast for
        AMP), which ``train_step`` enters before the forward pass: at the
        first micro-batch of an update it copies the model's buffers."""
        if not self._window_open:
            self._buffers.take(model)
            self._window_open = True
        with super().optim_context(model):
            yield

    def update_params(self, loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Backward, then step at the end of the accumulation window only if
        every loss of the window was finite on every rank."""
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        # queued before the backward pass; read (one sync) after it.
        # ``finite`` is on the loss's device: a CUDA tensor under NCCL (which
        # reduces CUDA tensors only), a CPU one under gloo
        finite = torch.isfinite(loss.detach()).all().to(torch.int32)
        if dist.get_world_size() > 1:
            dist.all_reduce(finite, op='min')
        self.backward(self.scale_loss(loss))
        ok = bool(finite.item())
        if not ok:
            self._void_window(zero_kwargs)
        if self.should_update():
            if self._window_void:
                self.zero_grad(**zero_kwargs)
                self._restore_buffers()
                self._window_void = False
            else:
                self.step(**step_kwargs)
                self.zero_grad(**zero_kwargs)
                self.consecutive_skips = 0
            self._window_open = False
        if not ok and not self.hook_attached and self.must_raise():
            local_ok = bool(torch.isfinite(loss.detach()).all())
            raise NonFiniteLossError(self.describe([] if local_ok else None))

    def _void_window(self, zero_kwargs: Dict) -> None:
        """A non-finite loss: clear the gradients, restore the buffers and
        count the window's update as skipped (once)."""
        self._micro_batch = (self._inner_count - 1) % \
            self._accumulative_counts
        self.zero_grad(**zero_kwargs)
        self._restore_buffers()
        self.num_nonfinite += 1
        self.nonfinite_pending = True
        if not self._window_void:
            self._window_void = True
            self.num_skipped += 1
            self.consecutive_skips += 1

    def _restore_buffers(self) -> None:
        if self._buffers.taken and self._window_open:
            self._buffers.restore()
        elif not self._warned_no_context:
            self._warned_no_context = True
            print_log(
                'NonFiniteGuard: the model\'s buffers (e.g. BatchNorm running '
                'statistics) cannot be restored after a non-finite loss: '
                'train_step did not enter optim_wrapper.optim_context(model) '
                'before the forward pass, so no copy was taken.',
                logger='current', level=logging.WARNING)

    def must_raise(self) -> bool:
        """Whether the current non-finite iteration ends training."""
        return self.nonfinite_policy == 'raise' or \
            self.consecutive_skips >= self.max_consecutive_skips

    def _window_text(self) -> str:
        """Where the last non-finite micro-batch sits in its window."""
        size = self._accumulative_counts
        if size == 1:
            return ''
        start = self._inner_count - 1 - self._micro_batch  # 0-based counts
        if self._max_counts != -1:
            size = min(size, self._max_counts - start)
        return (f' in micro-batch {self._micro_batch} (0-based) of the '
                f'{size}-iteration accumulation window of iterations '
                f'{start + 1}-{start + size}, whose update is skipped')

    def describe(self, keys: Optional[List[str]] = None) -> str:
        """The error/warning text for the current non-finite iteration.

        Args:
            keys: the non-finite loss terms of this rank; ``[]`` when this
                rank's loss was finite (another rank's was not); ``None``
                when unknown.
        """
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter')
        where = f'iteration {it + 1}' if it is not None else 'an iteration'
        if keys is not None and not keys:
            what = 'the loss of another rank was not finite'
        elif keys:
            what = f'non-finite loss terms: {", ".join(keys)}'
        else:
            what = 'the total loss was not finite'
        msg = f'non-finite loss at {where} ({what}){self._window_text()}'
        if self.batch_files:
            msg += '; images of the batch: ' + ', '.join(self.batch_files)
        elif not self.hook_attached:
            msg += ' (add NonFiniteGuardHook to default_hooks to see the ' \
                   'loss terms and image files)'
        if self.nonfinite_policy == 'skip':
            msg += f'; {self.consecutive_skips} consecutive skipped ' \
                   f'update(s) (max_consecutive_skips=' \
                   f'{self.max_consecutive_skips}), {self.num_skipped} ' \
                   f'skipped in this run'
        return msg + '. See docs/troubleshooting_nan.md.'


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(NonFiniteGuardMixin, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the non-finite loss guard."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardAmpOptimWrapper(NonFiniteGuardMixin, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with the non-finite loss guard."""


def amp_optim_wrapper_type(type_name: str) -> str:
    """The AMP counterpart of an optimizer wrapper type, for ``--amp``.

    ``'OptimWrapper'`` -> ``'AmpOptimWrapper'`` and
    ``'NonFiniteGuardOptimWrapper'`` -> ``'NonFiniteGuardAmpOptimWrapper'``;
    AMP types are returned as they are.
    """
    mapping = {'OptimWrapper': 'AmpOptimWrapper',
               'NonFiniteGuardOptimWrapper': 'NonFiniteGuardAmpOptimWrapper'}
    if type_name in mapping.values():
        return type_name
    if type_name not in mapping:
        raise ValueError(f'no AMP variant known for optimizer wrapper '
                         f'{type_name!r}; known: {sorted(mapping)}')
    return mapping[type_name]
