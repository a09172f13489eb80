"""Dynamic Task Prioritization (DTP), task level.

M. Guo, A. Haque, D.-A. Huang, S. Yeung, L. Fei-Fei, "Dynamic Task
Prioritization for Multitask Learning", ECCV 2018, pp. 270-287, Sec. 3
(task-level prioritization, Eq. 5-6).
"""
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_range

__all__ = ['DTP']


@register_rule
class DTP(BaseWeighting):
    r"""Dynamic Task Prioritization: the task with the worse KPI gets more weight.

    Each task :math:`i` reports a key performance indicator
    :math:`\kappa_i \in [0, 1]` per iteration (signal ``kpi``; in mmdet_alwa:
    accuracy of the sampled anchors/proposals for classification, mean IoU of
    the positive predicted/target boxes for regression). DTP smooths it and
    weights the task with the focal term of that KPI:

    .. math::

        \bar\kappa_i(\tau) = \alpha\,\kappa_i(\tau)
                             + (1-\alpha)\,\bar\kappa_i(\tau-1), \qquad
        w_i = -(1-\bar\kappa_i)^{\gamma_i}\,\log\bar\kappa_i

    :math:`\bar\kappa_i` starts at the first observed KPI, and is clamped to
    ``[eps, 1-eps]`` before the weight is formed (so :math:`w_i` is finite and
    positive). Until a task has reported a KPI its weight is 1. A non-finite
    KPI (e.g. a regression KPI on an iteration without positive samples) is
    skipped; a finite one outside [0, 1] raises ``ValueError``.

    Shapes: ``kpi`` is ``{task: float}``; the state is one float per task.

    Args:
        tasks: names of the balanced losses.
        gamma (float | dict): focusing parameter :math:`\gamma_i \ge 0`, one
            value for all tasks or one per task. Default 1.0.
        alpha (float): EMA factor of the new KPI, in (0, 1]. Default 0.1.
        eps (float): clamp of :math:`\bar\kappa` away from 0 and 1, in
            (0, 0.5). Default 1e-4.
    """

    required_signals = ('kpi',)

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 gamma: Union[float, Mapping[str, float]] = 1.0,
                 alpha: float = 0.1, eps: float = 1e-4) -> None:
        super().__init__(tasks)
        if isinstance(gamma, Mapping):
            self._check_keys('gamma', gamma)
            self.gamma = {t: check_range(f'gamma[{t!r}]', gamma[t], 0,
                                         math.inf) for t in self.tasks}
        else:
            g = check_range('gamma', gamma, 0, math.inf)
            self.gamma = {t: g for t in self.tasks}
        self.alpha = check_range('alpha', alpha, 0, 1, low_inclusive=False)
        self.eps = check_range('eps', eps, 0, 0.5, False, False)
        self.kpi_ema: Dict[str, Optional[float]] = {t: None for t in self.tasks}

    @property
    def weights(self) -> Dict[str, float]:
        out = {}
        for task in self.tasks:
            k = self.kpi_ema[task]
            if k is None:
                out[task] = 1.0
            else:
                k = min(max(k, self.eps), 1 - self.eps)
                out[task] = -(1 - k)**self.gamma[task] * math.log(k)
        return out

    def _update(self, losses: Dict[str, float], kpi: Mapping[str, float],
                **signals) -> None:
        self._check_keys('kpi', kpi)
        for task in self.tasks:
            value = float(kpi[task])
            if not math.isfinite(value):
                continue
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f'kpi[{task!r}] must lie in [0, 1], got {value}')
            old = self.kpi_ema[task]
            self.kpi_ema[task] = value if old is None else \
                self.alpha * value + (1 - self.alpha) * old

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars.update({f'kpi_{t}': k for t, k in self.kpi_ema.items()
                        if k is not None})
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(kpi_ema=dict(self.kpi_ema))

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.kpi_ema = {t: state['kpi_ema'][t] for t in self.tasks}
