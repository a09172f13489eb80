"""FAMO's ``loss_after_step`` signal: each task's raw loss on the same batch
after the optimizer step (the paper's re-forward, Liu et al., NeurIPS 2023,
Algorithm 1).

A forward pre-hook on the detector keeps the preprocessed batch of the
iteration's ``forward(mode='loss')``; :meth:`LossAfterStepProvider.collect`
(in ``after_train_iter``, after the optimizer step and after the weighting
hook's loss taps stopped, so nothing is weighted) forwards it again in loss
mode under ``torch.no_grad`` and sums each task's loss-module outputs, as the
taps do. The re-forward

- runs in the optim wrapper's context (``optim_context``: the same autocast
  as the training forward under ``--amp``);
- leaves no trace: the model's buffers (BatchNorm running statistics) are
  restored afterwards and the random state is forked
  (``torch.random.fork_rng``), so the training's own stream is unchanged;
  the authors' code re-forwards in train mode and lets BatchNorm update its
  statistics a second time, a side effect of the implementation rather than
  of the method;
- costs one forward per iteration without backward (docs/balancers.md,
  "Loss-only methods over TorchJD").

A detector whose loss modules do not run in that forward gives NaN, which
FAMO treats as "no update".
"""
import math
from typing import Any, Dict, List, Union

import torch
from torch import Tensor, nn

from .base import SignalProvider, register_signal_provider

__all__ = ['LossAfterStepProvider']


@register_signal_provider('loss_after_step')
class LossAfterStepProvider(SignalProvider):
    """The raw losses of the iteration's batch after the step (see the module
    docstring); ``warn_after`` as :class:`~.base.SignalProvider`."""

    def attach(self, model: nn.Module, loss_modules) -> None:
        super().attach(model, loss_modules)
        self._batch = None
        self._measuring = False
        self._outputs: Dict[str, List[Tensor]] = {}
        self._handles = [model.register_forward_pre_hook(
            self._keep_batch, with_kwargs=True)]
        for task, modules in loss_modules.items():
            for module in modules:
                self._handles.append(module.register_forward_hook(
                    self._make_recorder(task)))

    def _keep_batch(self, module, args, kwargs):
        if module.training and not self._measuring and \
                kwargs.get('mode', args[2] if len(args) > 2 else None) \
                == 'loss':
            self._batch = (args, dict(kwargs))

    def _make_recorder(self, task: str):
        def record(module, args, output):
            if self._measuring and isinstance(output, Tensor):
                self._outputs.setdefault(task, []).append(output)
        return record

    def reset(self) -> None:
        self._batch = None
        self._outputs = {}

    def collect(self) -> Dict[str, Union[float, Tensor]]:
        if self._batch is None:
            return {t: math.nan for t in self.loss_modules}
        args, kwargs = self._batch
        buffers = [b.detach().clone() for b in self.model.buffers()]
        context = self.optim_wrapper.optim_context(self.model) \
            if self.optim_wrapper is not None and hasattr(
                self.optim_wrapper, 'optim_context') else _nothing()
        self._measuring, self._outputs = True, {}
        try:
            with torch.no_grad(), torch.random.fork_rng(
                    devices=_cuda_devices(buffers, args, kwargs)), context:
                self.model(*args, **kwargs)
        finally:
            self._measuring = False
            with torch.no_grad():
                for buffer, saved in zip(self.model.buffers(), buffers):
                    buffer.copy_(saved)
        totals = {}
        for task in self.loss_modules:
            outs = self._outputs.get(task)
            totals[task] = math.nan if not outs else torch.stack(
                [o.detach().float().sum() for o in outs]).sum()
        self._outputs, self._batch = {}, None
        return totals

    def detach(self) -> None:
        for handle in getattr(self, '_handles', []):
            handle.remove()
        self._handles = []

    def empty_reason(self) -> str:
        return ('the re-forward of the batch after the step did not run its '
                'loss modules, or gave a non-finite loss')


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _cuda_devices(buffers, args, kwargs) -> List[int]:
    """The CUDA devices whose random state ``fork_rng`` must keep."""
    tensors: List[Any] = list(buffers) + [
        a for a in list(args) + list(kwargs.values())
        if isinstance(a, Tensor)]
    return sorted({t.device.index or 0 for t in tensors
                   if t.device.type == 'cuda'})
