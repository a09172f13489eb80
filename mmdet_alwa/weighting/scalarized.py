r"""Loss-only rules as adapters over TorchJD's scalarizers.

A scalarizer :math:`S(L_1, \dots, L_K)` of TorchJD
(``torchjd.scalarization``) maps the task losses to one loss. Its gradient
is :math:`\nabla_\theta S = \sum_k \frac{\partial S}{\partial L_k}
\nabla_\theta L_k`, so weighting each task by

.. math::

    w_k = c\,\frac{\partial S}{\partial L_k}\Big|_{L = L(t)}

(``c`` = ``scale``, 1 by default) at this iteration's losses back-propagates
exactly :math:`c\,\nabla_\theta S` through mmdet's plain sum of weighted
losses. :class:`ScalarizerWeighting` computes :math:`w` with
``torch.autograd.grad`` of the TorchJD scalarizer applied to a detached copy
of the loss vector (shape ``(K,)``, float64), so the method's mathematics is
TorchJD's and ours is the detection integration.

Same iteration: the glue (``LossWeightingHook``) calls :meth:`prepare` with
the rank-averaged raw losses of the iteration as 0-d device tensors (NaN
where no rank's loss was finite) once every loss exists, before backward;
the weights are computed there, on the device, without a host read. If a
loss or a weight is not finite (a NaN/inf loss; a zero loss in the geometric
mean), the weights of the previous iteration are used (initially those of
equal unit losses), selected with ``torch.where``; the fallback is counted
(``num_fallbacks``) from the flag read with the iteration's statistics
(:meth:`device_state`). Under DDP every rank sees the same averaged losses,
hence the same weights.
"""
import math
from abc import abstractmethod
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch

from .base import BaseWeighting
from .validation import check_positive

__all__ = ['ScalarizerWeighting', 'iteration_seed']


def iteration_seed(seed: int, iteration: int) -> int:
    """A generator seed for one iteration of a random rule: SplitMix64 of
    ``seed * 2**32 + iteration`` (well mixed in its low 32 bits, the only
    ones the CPU generator's Mersenne Twister uses), to 63 bits. Every DDP
    rank gets the same seed without a collective, and a resumed run the
    same stream."""
    z = ((seed << 32) + iteration + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return (z ^ (z >> 31)) >> 1


def _on_device(values: Sequence[float], device: torch.device,
               dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Python floats as a vector on ``device``, written with fills (no
    blocking host-to-device copy)."""
    return torch.stack([torch.full((), float(v), dtype=dtype, device=device)
                        for v in values])


class ScalarizerWeighting(BaseWeighting):
    """Base of the rules whose weights are the gradient of a TorchJD
    scalarizer at this iteration's losses (see the module docstring).

    Subclasses implement :meth:`_scalarize` (the TorchJD call on a
    ``(K,)`` float64 tensor) and may extend :meth:`_update` (state that
    follows the iteration's losses as numbers).

    Args:
        tasks: names of the balanced losses.
        scale (float): :math:`c`, multiplies every weight. Default 1 (the
            method as published).
    """

    same_iteration = True

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 scale: float = 1.0) -> None:
        super().__init__(tasks)
        self.scale = check_positive('scale', scale)
        self.num_fallbacks = 0
        # the device weights of the last prepare() and whether they fell back
        self._applied: Optional[torch.Tensor] = None
        self._fallback_flag: Optional[torch.Tensor] = None
        self._fresh = False    # _applied not yet in _values
        self._handed = False   # set_device_values() ran for this step()
        # the applied weights as numbers (empty: not computed yet)
        self._values: List[float] = []

    def _last_values(self) -> List[float]:
        """The weights last applied as numbers; initially those at equal
        unit losses (computed on the CPU, once)."""
        if not self._values:
            weights = self._gradient(torch.ones(len(self.tasks),
                                                dtype=torch.float64))
            self._values = [float(v) for v in weights.detach()]
        return self._values

    # -------------------------------------------------------- the gradient
    @abstractmethod
    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        """:math:`S(L)` by TorchJD, for ``losses`` of shape ``(K,)``."""

    def _gradient(self, losses: torch.Tensor) -> torch.Tensor:
        r""":math:`c\,\partial S/\partial L` at ``losses`` (shape ``(K,)``)."""
        x = losses.detach().to(torch.float64).clone().requires_grad_(True)
        with torch.enable_grad():
            value = self._scalarize(x)
            grad, = torch.autograd.grad(value, x)
        return grad * self.scale

    # ------------------------------------------------------------------ api
    def prepare(self, raw_losses: Mapping[str, Union[float, torch.Tensor]]
                ) -> Dict[str, Union[float, torch.Tensor]]:
        self._check_keys('raw_losses', raw_losses)
        values = [raw_losses[t] for t in self.tasks]
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        device = tensors[0].device if tensors else torch.device('cpu')
        losses = torch.stack([
            v.detach().to(device=device, dtype=torch.float64).reshape(())
            if isinstance(v, torch.Tensor) else
            torch.full((), float(v), dtype=torch.float64, device=device)
            for v in values])
        weights = self._weights_at(losses)
        last = self._applied if self._applied is not None and \
            self._applied.device == device else _on_device(
                self._last_values(), device)
        ok = torch.isfinite(losses).all() & torch.isfinite(weights).all()
        self._applied = torch.where(ok, weights, last)
        self._fallback_flag = (~ok).to(torch.float64)
        self._fresh = True
        if not tensors:  # python floats in, python floats out
            return self.weights
        return dict(zip(self.tasks, self._applied.unbind()))

    def _weights_at(self, losses: torch.Tensor) -> torch.Tensor:
        """The weights for this iteration's loss vector (a hook for rules
        with state to advance first, as FAMO)."""
        return self._gradient(losses)

    @property
    def weights(self) -> Dict[str, float]:
        if self._fresh:  # used without the glue: read them now
            self._values = [float(v) for v in self._applied]
            self.num_fallbacks += int(float(self._fallback_flag))
            self._fallback_flag = None
            self._fresh = False
        return dict(zip(self.tasks, self._last_values()))

    def device_state(self) -> List[torch.Tensor]:
        if self._fresh:
            return [self._applied, self._fallback_flag.reshape(1)]
        return []

    def set_device_values(self, values: Sequence[float]) -> None:
        n = len(self.tasks)
        if not self._fresh or len(values) < n + 1:
            super().set_device_values(values)
            return
        self._values = [float(v) for v in values[:n]]
        self.num_fallbacks += int(values[n])
        self._fallback_flag = None
        self._fresh = False
        self._handed = True
        self._set_extra_device_values(list(values[n + 1:]))

    def _set_extra_device_values(self, values: List[float]) -> None:
        if values:
            raise ValueError(f'{type(self).__name__}: {len(values)} '
                             f'unexpected device values')

    def _update(self, losses: Dict[str, float], **signals) -> None:
        self.weights  # the applied weights as numbers (read if no glue)
        self._handed = False

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars['num_fallbacks'] = float(self.num_fallbacks)
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        self.weights  # noqa: B018 (brings pending device weights in)
        return dict(last_weights=list(self._last_values()),
                    num_fallbacks=self.num_fallbacks)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        values = [float(v) for v in state['last_weights']]
        if len(values) != len(self.tasks) or \
                not all(math.isfinite(v) for v in values):
            raise ValueError(f'{type(self).__name__}: last_weights must be '
                             f'{len(self.tasks)} finite numbers, got {values}')
        self._values = values
        self.num_fallbacks = int(state['num_fallbacks'])
        self._applied = None
        self._fallback_flag = None
        self._fresh = False
        self._handed = False
