r"""GradNorm's and TDB's ``grad_norm`` signal: :math:`\|\nabla_W L_i\|_2` of
each task's raw loss with respect to a shared layer :math:`W`.

Computed with ``torch.autograd.grad(retain_graph=True)`` after the
detector's loss forward and before the main backward (:meth:`on_losses`). A
task whose loss does not reach :math:`W` (not called, or cut off the graph)
gets 0 and, after ``warn_after`` such iterations, a warning.
"""
import math
from typing import Dict, List, Mapping, Sequence, Union

import torch
from torch import nn

from mmdet_alwa.models.utils.measures import find_shared_layer
from .base import SignalProvider, register_signal_provider
from .loss_calls import owner

__all__ = ['GradNormProvider']


@register_signal_provider('grad_norm')
class GradNormProvider(SignalProvider):
    """Norm of each task's raw-loss gradient w.r.t. shared parameters.

    Args:
        shared_layer (str | list[str], optional): name(s) of the module(s) of
            the unwrapped detector whose parameters form :math:`W`. Default:
            :func:`~mmdet_alwa.models.utils.measures.find_shared_layer` --
            the head's ``rpn_conv`` (RPN), its last ``shared_fcs`` /
            ``shared_convs`` layer (RoI heads), else the neck's output layer
            (heads whose branches split at their input, losses of several
            heads). ``['backbone', 'neck']`` gives LibMTL's "all shared
            parameters".
        warn_after (int): see :class:`~.base.SignalProvider`.
    """

    def __init__(self, shared_layer: Union[str, Sequence[str], None] = None,
                 warn_after: int = 50) -> None:
        super().__init__(warn_after)
        if isinstance(shared_layer, str):
            shared_layer = [shared_layer]
        if shared_layer is not None and (not shared_layer or not all(
                isinstance(s, str) and s for s in shared_layer)):
            raise ValueError(f'shared_layer must be a module name or a list '
                             f'of them, got {shared_layer!r}')
        self.shared_layer = shared_layer
        self.norms: Dict[str, float] = {}

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        super().attach(model, loss_modules)
        names = self.shared_layer or [find_shared_layer(
            model, [owner(model, m) for ms in loss_modules.values()
                    for m in ms])]
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f'shared_layer {missing} not found in the '
                             f'model')
        self.layer_names = names
        self.params = [p for n in names for p in modules[n].parameters()
                       if p.requires_grad]
        if not self.params:
            raise ValueError(f'shared_layer {names} has no trainable '
                             f'parameters')

    def reset(self) -> None:
        self.norms = {}

    def on_losses(self, raw: Mapping[str, torch.Tensor], rule) -> None:
        for task, loss in raw.items():
            if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
                self.norms[task] = 0.0
                continue
            grads = torch.autograd.grad(loss, self.params, retain_graph=True,
                                        allow_unused=True)
            sq = [g.detach().float().pow(2).sum() for g in grads
                  if g is not None]
            self.norms[task] = float(torch.stack(sq).sum().sqrt()) \
                if sq else 0.0

    def collect(self) -> Dict[str, float]:
        return self.watch({t: self.norms.get(t, math.nan)
                           for t in self.loss_modules})

    def is_empty(self, value: float) -> bool:
        return not (math.isfinite(value) and value > 0)

    def empty_reason(self) -> str:
        return (f'the task\'s loss was not computed or does not depend on '
                f'the shared layer {self.layer_names}')
