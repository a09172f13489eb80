"""Dynamic Weight Average (DWA).

S. Liu, E. Johns, A. J. Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019, arXiv:1803.10704, Eq. 7.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_int, check_positive

__all__ = ['DWA']


@register_rule
class DWA(BaseWeighting):
    r"""Dynamic Weight Average: a task whose loss falls slowly gets more weight.

    With :math:`K` tasks, windows :math:`k = 0, 1, \dots` of ``interval``
    iterations each (the paper uses epochs, which are long in detection) and
    :math:`\bar L_i(k)` the mean raw loss of task :math:`i` over window
    :math:`k`, the weights used during window :math:`k` are

    .. math::

        r_i(k-1) = \bar L_i(k-1) / \bar L_i(k-2), \qquad
        w_i(k) = K \frac{\exp(r_i(k-1)/T)}{\sum_j \exp(r_j(k-1)/T)}

    and :math:`w_i = 1` during the first two windows.

    Overflow guard (the ALWA paper reports DWA "overflow" on Faster R-CNN):
    the ratio is formed in log space, :math:`\log r_i = \log\bar L_i(k-1) -
    \log\bar L_i(k-2)` with window means floored at ``eps``, capped at
    ``log_ratio_max`` (so :math:`r_i/T` is a finite float64), and the
    softmax is taken max-subtracted, in python floats (no tensor: no host
    read). Any loss magnitude gives finite weights in :math:`[0, K]`. A task
    without a finite loss in one of the two windows has :math:`r_i = 1`.

    Shapes: losses are scalars per task; the state is two window means per task
    (python floats).

    Args:
        tasks: names of the balanced losses.
        interval (int): iterations per window. Default 100.
        temperature (float): :math:`T`. Default 2.0 (the paper's value).
        eps (float): floor of a window mean before the log. Default 1e-12.
        log_ratio_max (float): cap of :math:`\log r_i`. Default 50.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 100, temperature: float = 2.0,
                 eps: float = 1e-12, log_ratio_max: float = 50.0) -> None:
        super().__init__(tasks)
        self.interval = check_int('interval', interval)
        self.temperature = check_positive('temperature', temperature)
        self.eps = check_positive('eps', eps)
        self.log_ratio_max = check_positive('log_ratio_max', log_ratio_max)
        self._weights = {t: 1.0 for t in self.tasks}
        self._reset_window()
        # means of the last two closed windows, oldest first (None: no
        # finite loss of that task in the window)
        self._history: List[Dict[str, Optional[float]]] = []
        self.num_windows = 0

    def _reset_window(self) -> None:
        self._win_iters = 0
        self._win_sum = {t: 0.0 for t in self.tasks}
        self._win_count = {t: 0 for t in self.tasks}

    @property
    def weights(self) -> Dict[str, float]:
        return dict(self._weights)

    def _update(self, losses: Dict[str, float], **signals) -> None:
        for task, value in losses.items():
            self._win_sum[task] += value
            self._win_count[task] += 1
        self._win_iters += 1
        if self._win_iters < self.interval:
            return
        means = {t: self._win_sum[t] / self._win_count[t]
                 if self._win_count[t] else None for t in self.tasks}
        self._history = (self._history + [means])[-2:]
        self.num_windows += 1
        self._reset_window()
        if len(self._history) == 2:
            self._weights = self._compute(*self._history)

    def _compute(self, older: Mapping[str, Optional[float]],
                 newer: Mapping[str, Optional[float]]) -> Dict[str, float]:
        scaled = []
        for task in self.tasks:
            a, b = newer[task], older[task]
            log_r = 0.0 if a is None or b is None else \
                math.log(max(a, self.eps)) - math.log(max(b, self.eps))
            if math.isnan(log_r):  # both means overflowed to inf
                log_r = 0.0
            scaled.append(math.exp(min(log_r, self.log_ratio_max))
                          / self.temperature)
        # softmax, max-subtracted, in torch.softmax's order: exp(x - max)
        # <= 1, times 1 / sum
        top = max(scaled)
        exps = [math.exp(x - top) for x in scaled]
        inv = 1 / sum(exps)
        return {t: len(self.tasks) * (e * inv)
                for t, e in zip(self.tasks, exps)}

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        if self._history:
            for task, mean in self._history[-1].items():
                if mean is not None:
                    scalars[f'window_mean_{task}'] = mean
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(weights=dict(self._weights), history=list(self._history),
                    num_windows=self.num_windows, win_iters=self._win_iters,
                    win_sum=dict(self._win_sum),
                    win_count=dict(self._win_count))

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._weights = {t: float(state['weights'][t]) for t in self.tasks}
        self._history = [{t: h[t] for t in self.tasks}
                         for h in state['history']]
        self.num_windows = int(state['num_windows'])
        self._win_iters = int(state['win_iters'])
        self._win_sum = {t: float(state['win_sum'][t]) for t in self.tasks}
        self._win_count = {t: int(state['win_count'][t]) for t in self.tasks}
