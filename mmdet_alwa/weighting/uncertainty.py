"""Homoscedastic uncertainty weighting.

A. Kendall, Y. Gal, R. Cipolla, "Multi-Task Learning Using Uncertainty to
Weigh Losses for Scene Geometry and Semantics", CVPR 2018, arXiv:1705.07115,
Eq. 7.
"""
import math
from typing import Any, Dict, List, Mapping, Sequence

import torch

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_range

__all__ = ['UncertaintyWeighting']


@register_rule
class UncertaintyWeighting(BaseWeighting):
    r"""Uncertainty weighting with a learnable log-variance per task.

    With :math:`s_i = \log\sigma_i^2` (learnable, shape ``(K,)`` for
    :math:`K` tasks) the total loss is Kendall's Eq. 7 in the log-variance
    form used for every task:

    .. math::

        L = \sum_i \tfrac12 e^{-s_i} L_i + \tfrac12 s_i

    :meth:`weight_loss` returns :math:`\tfrac12 e^{-s_i} L_i` (differentiable
    in :math:`s_i`), :meth:`regularizer` returns :math:`\tfrac12\sum_i s_i`,
    and :meth:`parameters` gives :math:`s` to the main optimizer, which trains
    it with the network (the glue adds it as a parameter group and adds the
    regularizer to the loss dict once per iteration).

    Init: :math:`s_i = ` ``init_log_var`` (default 0, i.e. :math:`\sigma_i^2=1`,
    so every loss starts at weight 1/2). :attr:`weights` reports
    :math:`\tfrac12 e^{-s_i}`. :meth:`step` only guards the parameter: if an
    update made :math:`s` non-finite (a NaN/inf loss reached the optimizer),
    the last finite value is restored and counted in ``num_restored``.

    Host reads: :attr:`weights`, :meth:`step`'s guard, :meth:`log_scalars`
    and :meth:`state_dict` use python floats of :math:`s`. Under the glue
    they come from :meth:`device_state`, read with the iteration's
    statistics after the optimizer step, so the rule itself never reads the
    device. Without it, :meth:`step` reads them, and so does any of the
    others after an in-place change that bumps the parameter's version
    counter (``optimizer.step()``, a load; a fused optimizer's step does not
    bump it: its change is seen from the next :meth:`step`).

    Args:
        tasks: names of the balanced losses.
        init_log_var (float): initial :math:`s_i`, in [-20, 20]. Default 0.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 init_log_var: float = 0.0) -> None:
        super().__init__(tasks)
        init = check_range('init_log_var', init_log_var, -20, 20)
        self.log_vars = torch.nn.Parameter(
            torch.full((len(self.tasks), ), init))
        self._last_finite = self.log_vars.detach().clone()
        self.num_restored = 0
        # python floats of log_vars and the parameter version they are of
        self._values: List[float] = []
        self._values_version = -1
        self._handed = False
        self._last_finite_values = list(self._log_var_values())

    def device_state(self) -> List[torch.Tensor]:
        return [self.log_vars]

    def set_device_values(self, values: Sequence[float]) -> None:
        if len(values) != len(self.tasks):
            raise ValueError(f'UncertaintyWeighting: {len(self.tasks)} '
                             f'log-variances expected, got {len(values)}')
        self._cache(values)
        self._handed = True  # for the coming step()

    def _cache(self, values: Sequence[float]) -> None:
        self._values = [float(v) for v in values]
        self._values_version = self.log_vars._version

    def _read(self) -> None:
        self._cache(self.log_vars.detach().double().tolist())

    def _log_var_values(self) -> List[float]:
        """:math:`s` as python floats (read if the parameter changed since
        the last read: an optimizer step, a load)."""
        if self._values_version != self.log_vars._version:
            self._read()
        return self._values

    @property
    def weights(self) -> Dict[str, float]:
        return {t: 0.5 * math.exp(-v)
                for t, v in zip(self.tasks, self._log_var_values())}

    def weight_loss(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        s = self.log_vars[self.tasks.index(task)]
        return 0.5 * torch.exp(-s.to(loss.device)) * loss

    def regularizer(self) -> torch.Tensor:
        return 0.5 * self.log_vars.sum()

    def parameters(self) -> List[torch.nn.Parameter]:
        return [self.log_vars]

    def _update(self, losses: Dict[str, float], **signals) -> None:
        if not self._handed:  # used without the glue: read them now
            self._read()
        self._handed = False
        values = self._values
        with torch.no_grad():
            if all(math.isfinite(v) for v in values):
                self._last_finite = self.log_vars.detach().clone()
                self._last_finite_values = list(values)
            else:
                self.log_vars.copy_(self._last_finite)
                self.num_restored += 1
                # the restored values are known: no read
                self._cache(self._last_finite_values)

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars.update({f'log_var_{t}': v for t, v in
                        zip(self.tasks, self._log_var_values())})
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        # the float32 values as python floats (as .tolist() gives them)
        return dict(log_vars=list(self._log_var_values()),
                    num_restored=self.num_restored)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():  # in place: the optimizer keeps its reference
            self.log_vars.copy_(torch.tensor(state['log_vars']))
        self._last_finite = self.log_vars.detach().clone()
        self._handed = False
        self._last_finite_values = list(self._log_var_values())
        self.num_restored = int(state['num_restored'])
