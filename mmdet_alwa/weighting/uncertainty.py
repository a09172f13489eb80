"""Homoscedastic uncertainty weighting.

A. Kendall, Y. Gal, R. Cipolla, "Multi-Task Learning Using Uncertainty to
Weigh Losses for Scene Geometry and Semantics", CVPR 2018, arXiv:1705.07115,
Eq. 7.
"""
import math
from typing import Any, Dict, List, Mapping, Sequence

import torch

from .registry import register_rule
from .base import BaseWeighting, check_range

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

    @property
    def weights(self) -> Dict[str, float]:
        s = self.log_vars.detach().double()
        return {t: 0.5 * math.exp(-float(v)) for t, v in zip(self.tasks, s)}

    def weight_loss(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        s = self.log_vars[self.tasks.index(task)]
        return 0.5 * torch.exp(-s.to(loss.device)) * loss

    def regularizer(self) -> torch.Tensor:
        return 0.5 * self.log_vars.sum()

    def parameters(self) -> List[torch.nn.Parameter]:
        return [self.log_vars]

    def _update(self, losses: Dict[str, float], **signals) -> None:
        with torch.no_grad():
            if torch.isfinite(self.log_vars).all():
                self._last_finite = self.log_vars.detach().clone()
            else:
                self.log_vars.copy_(self._last_finite)
                self.num_restored += 1

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars.update({f'log_var_{t}': float(v)
                        for t, v in zip(self.tasks, self.log_vars.detach())})
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(log_vars=self.log_vars.detach().cpu().tolist(),
                    num_restored=self.num_restored)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():  # in place: the optimizer keeps its reference
            self.log_vars.copy_(torch.tensor(state['log_vars']))
        self._last_finite = self.log_vars.detach().clone()
        self.num_restored = int(state['num_restored'])
