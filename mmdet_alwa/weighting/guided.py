"""Guided Loss.

J. Chen, D. Liu, T. Xu, S. Wu, Y. Cheng, E. Chen, "Is Heuristic Sampling
Necessary in Training Deep Object Detectors?" (Sampling-Free), IEEE TIP 30,
2021, pp. 8454-8467, arXiv:1909.04868, Sec. 3.3.
"""
import math
from typing import Any, Dict, Mapping, Sequence

from .registry import register_rule
from .base import BaseWeighting, check_int, check_positive

__all__ = ['GuidedLoss']


@register_rule
class GuidedLoss(BaseWeighting):
    r"""Guided Loss: scale the classification loss to the regression loss.

    With the classification task :math:`c` (``tasks[0]``) and the regression
    task :math:`r` (``tasks[1]``) the loss is
    :math:`L = w\,L_c + L_r`, with the detached ratio

    .. math::

        w(t) = \rho(t-1), \qquad \rho(t) = L_r(t) / L_c(t)

    - ``mode='rpn'`` (the paper's RPN form): :math:`w` follows the ratio every
      iteration.
    - ``mode='one_stage'`` (the paper's RetinaNet form): during the first
      ``warmup`` iterations :math:`w` follows the ratio as above; then it is
      frozen at the mean of the ``warmup`` ratios,
      :math:`w = \frac1{n}\sum_{t<n}\rho(t)`.

    Variant: the ratio-only Guided Loss of the paper. The authors' one-stage
    code additionally learns uncertainty weights on top of it; that part is not
    included (use :class:`UncertaintyWeighting` for learned weights).

    Differences forced by the rule interface: the ratio of iteration
    :math:`t-1` weights iteration :math:`t` (the classification loss is weighted
    before the regression loss of the same iteration exists), and under DDP
    :math:`\rho` is the ratio of the rank-averaged losses, so every rank uses
    the same :math:`w`. The first iteration uses :math:`w = 1`. An iteration
    whose losses are non-finite, or whose :math:`L_c \le` ``eps``, leaves
    :math:`w` unchanged and does not count towards the warm-up (the paper's
    "nan" on Libra R-CNN cannot come from the ratio).

    Shapes: two scalar losses per iteration; the state is python floats.

    Args:
        tasks: ``(classification, regression)`` names; exactly two.
        mode (str): ``'rpn'`` or ``'one_stage'``. Default ``'rpn'``.
        warmup (int): warm-up iterations of the one-stage form. Default 100.
        eps (float): smallest classification loss used for a ratio.
            Default 1e-12.
    """

    MODES = ('rpn', 'one_stage')

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 mode: str = 'rpn', warmup: int = 100,
                 eps: float = 1e-12) -> None:
        super().__init__(tasks)
        if len(self.tasks) != 2:
            raise ValueError(f'tasks must be (classification, regression), '
                             f'got {self.tasks!r}')
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got {mode!r}')
        self.mode = mode
        self.warmup = check_int('warmup', warmup)
        self.eps = check_positive('eps', eps)
        self.ratio = 1.0
        self.ratio_mean = 0.0  # running mean: cannot overflow
        self.num_ratios = 0
        self.frozen = False

    @property
    def weights(self) -> Dict[str, float]:
        cls_task, reg_task = self.tasks
        return {cls_task: self.ratio, reg_task: 1.0}

    def _update(self, losses: Dict[str, float], **signals) -> None:
        if self.frozen or len(losses) != 2:
            return
        cls_task, reg_task = self.tasks
        if losses[cls_task] <= self.eps:
            return
        ratio = losses[reg_task] / losses[cls_task]
        if not math.isfinite(ratio):
            return
        self.ratio = ratio
        if self.mode == 'one_stage':
            self.num_ratios += 1
            self.ratio_mean += (ratio - self.ratio_mean) / self.num_ratios
            if self.num_ratios == self.warmup:
                self.ratio = self.ratio_mean
                self.frozen = True

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        if self.mode == 'one_stage':
            scalars['frozen'] = float(self.frozen)
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(ratio=self.ratio, ratio_mean=self.ratio_mean,
                    num_ratios=self.num_ratios, frozen=self.frozen)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.ratio = float(state['ratio'])
        self.ratio_mean = float(state['ratio_mean'])
        self.num_ratios = int(state['num_ratios'])
        self.frozen = bool(state['frozen'])
