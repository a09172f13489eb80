r"""GradNorm's and TDB's ``grad_norm`` signal: the norm of each task's raw-loss
gradient at a shared layer :math:`W`.

``wrt='weights'`` (default, Chen et al.'s definition): :math:`\|\nabla_W
L_i\|_2`, the gradient with respect to the layer's parameters.
``wrt='output'``: :math:`\|\nabla_Z L_i\|_2`, with respect to the layer's
output :math:`Z` (the shared representation: the gradient MGDA-UB bounds,
Sener & Koltun, NeurIPS 2018, Sec. 3.3; LibMTL's ``rep_grad``). It measures
the same thing -- how hard each task pulls on what the tasks share -- and
skips the weight-gradient of :math:`W` that each task's pass otherwise
computes: on the FPN convs that all losses of a two-stage detector share,
about half of the pass (``benchmarks/bench_balancers.py``,
docs/balancers.md).

Computed with ``torch.autograd.grad(retain_graph=True)`` after the
detector's loss forward and before the main backward (:meth:`on_losses`),
one pass per task; not at all on the iterations where the rule will not
update its weights (GradNorm's and TDB's ``interval``), which get NaN. A
task whose loss does not reach :math:`W` (not called, or cut off the graph)
gets 0 and, after ``warn_after`` such iterations, a warning.
"""
import logging
import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import nn

from .base import SignalProvider, register_signal_provider
from .loss_calls import owner
from .measures import find_shared_layer

__all__ = ['GradNormProvider']


@register_signal_provider('grad_norm')
class GradNormProvider(SignalProvider):
    """Norm of each task's raw-loss gradient at a shared layer.

    Args:
        shared_layer (str | list[str], optional): name(s) of the module(s) of
            the unwrapped detector that form :math:`W`. Default:
            :func:`~.measures.find_shared_layer` --
            the head's ``rpn_conv`` (RPN), its last ``shared_fcs`` /
            ``shared_convs`` layer (RoI heads), else the neck's output layer
            (heads whose branches split at their input, losses of several
            heads). ``['backbone', 'neck']`` gives LibMTL's "all shared
            parameters".
        wrt (str): ``'weights'`` (default): the gradient with respect to the
            layers' trainable parameters; ``'output'``: with respect to their
            outputs (every call's; the children's for a ``ModuleList`` such
            as FPN's ``fpn_convs``). See the module docstring.
        warn_after (int): see :class:`~.base.SignalProvider`.
    """

    def __init__(self, shared_layer: Union[str, Sequence[str], None] = None,
                 wrt: str = 'weights', warn_after: int = 50) -> None:
        super().__init__(warn_after)
        if isinstance(shared_layer, str):
            shared_layer = [shared_layer]
        if shared_layer is not None and (not shared_layer or not all(
                isinstance(s, str) and s for s in shared_layer)):
            raise ValueError(f'shared_layer must be a module name or a list '
                             f'of them, got {shared_layer!r}')
        if wrt not in ('weights', 'output'):
            raise ValueError(f'wrt must be "weights" or "output", got '
                             f'{wrt!r}')
        self.shared_layer = shared_layer
        self.wrt = wrt
        self._handles: List = []
        self._warned_unscaled = False
        self.reset()

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
        if self.wrt == 'output':
            for name in names:
                module = modules[name]
                # a ModuleList has no forward: its layers are called
                for layer in (module if isinstance(module, nn.ModuleList)
                              else [module]):
                    self._handles.append(
                        layer.register_forward_hook(self._keep_output))

    def _keep_output(self, module, args, output) -> None:
        outputs = output if isinstance(output, (tuple, list)) else [output]
        self._outputs.extend(o for o in outputs if isinstance(
            o, torch.Tensor) and o.requires_grad)

    def reset(self) -> None:
        # 0-d device tensors (0.0: the loss does not reach W)
        self.norms: Dict[str, Union[float, torch.Tensor]] = {}
        self._outputs: List[torch.Tensor] = []
        self.measured = True

    def on_losses(self, raw: Mapping[str, torch.Tensor], rule) -> None:
        if hasattr(rule, 'updates_next') and not rule.updates_next():
            # the rule's step between updates (its ``interval``)
            self.measured = False
            self._outputs = []
            return
        inputs = self.params if self.wrt == 'weights' else self._outputs
        for task, loss in raw.items():
            if not (inputs and isinstance(loss, torch.Tensor)
                    and loss.requires_grad):
                self.norms[task] = 0.0
                continue
            norm = self.grad_norm(loss, inputs)
            # a device tensor: read once with the losses, after the reduce
            self.norms[task] = norm if norm is not None else 0.0
        self._outputs = []  # the next forward (accumulation) brings its own

    def grad_norm(self, loss: torch.Tensor, inputs: Sequence[torch.Tensor]
                  ) -> Optional[torch.Tensor]:
        """:math:`\\|\\nabla L\\|_2` of ``loss`` with respect to ``inputs``, a
        0-d float32 tensor on the gradients' device (no host read); None
        when no input is reached.

        With an enabled loss scaler (:meth:`loss_scaler`) the gradient is
        taken of ``scaler.scale(loss)`` -- the very product that the optim
        wrapper back-propagates -- and the norm divided by the scale (read as
        a device tensor), so float16 gradients below 6e-8 do not underflow to
        0. A scaled gradient that overflows (inf/NaN) gives a non-finite norm,
        which the rule does not use (GradNorm/TDB count it in
        ``num_skipped``). The squares are summed in float32 (bfloat16 has
        float32's range: no scaler is needed there).
        """
        scaler = self.loss_scaler(loss)
        scale = None
        if scaler is not None:
            loss = scaler.scale(loss)  # creates the scale at the first call
            scale = scaler._get_scale_async()
        grads = torch.autograd.grad(loss, inputs, retain_graph=True,
                                    allow_unused=True)
        sq = [g.detach().float().pow(2).sum() for g in grads
              if g is not None]
        if not sq:
            return None
        norm = torch.stack(sq).sum().sqrt()
        return norm if scale is None else norm / scale.to(norm.device)

    def loss_scaler(self, loss: torch.Tensor):
        """The enabled ``GradScaler`` of the optim wrapper handed over by the
        hook (``optim_wrapper.loss_scaler``: mmengine's ``AmpOptimWrapper``
        and our ``NonFiniteGuardAmpOptimWrapper``), else None.

        Without one, under float16 autocast (the gradients then underflow),
        warns once and measures unscaled.
        """
        scaler = getattr(self.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            return scaler
        device = loss.device.type
        if not self._warned_unscaled and torch.is_autocast_enabled(device) \
                and torch.get_autocast_dtype(device) == torch.float16:
            self._warned_unscaled = True
            print_log(
                f'grad_norm under float16 autocast without a loss scaler '
                f'(the optim wrapper {type(self.optim_wrapper).__name__} has '
                f'no enabled loss_scaler): gradients below 6e-8 underflow to '
                f'0, so the norms may be too small or 0; use AmpOptimWrapper '
                f'(--amp) or bfloat16', logger='current',
                level=logging.WARNING)
        return None

    def collect(self) -> Dict[str, Union[float, torch.Tensor]]:
        return {t: self.norms.get(t, math.nan) for t in self.loss_modules}

    def watch(self, values: Dict[str, float]) -> Dict[str, float]:
        # not measured on purpose: not an empty signal
        return super().watch(values) if self.measured else values

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def is_empty(self, value: float) -> bool:
        return not (math.isfinite(value) and value > 0)

    def empty_reason(self) -> str:
        return (f'the task\'s loss was not computed or does not depend on '
                f'the shared layer {self.layer_names} ({self.wrt})')
