"""Guided Loss.

J. Chen, D. Liu, T. Xu, S. Wu, Y. Cheng, E. Chen, "Is Heuristic Sampling
Necessary in Training Deep Object Detectors?" (Sampling-Free), IEEE TIP 30,
2021, pp. 8454-8467, arXiv:1909.04868, Sec. 3.3.
"""
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_int, check_positive

__all__ = ['GuidedLoss']


@register_rule
class GuidedLoss(BaseWeighting):
    r"""Guided Loss: scale the classification loss to the regression loss.

    With the classification task :math:`c` (``tasks[0]``) and the regression
    task :math:`r` (``tasks[1]``) the loss of iteration :math:`t` is
    :math:`L(t) = w(t)\,L_c(t) + L_r(t)` with the detached ratio

    .. math::

        w(t) = \rho(t) = L_r(t) / L_c(t)

    so the weighted classification loss equals the regression loss in value
    while its gradient is that of :math:`L_c` scaled by :math:`\rho(t)`
    (Chen et al., Sec. 3.3: the ratio of the same iteration).

    - ``mode='rpn'`` (the paper's RPN form): :math:`w` follows the ratio every
      iteration.
    - ``mode='one_stage'`` (the paper's RetinaNet form): during the first
      ``warmup`` iterations :math:`w` follows the ratio as above; then it is
      frozen at the mean of the ``warmup`` ratios,
      :math:`w = \frac1{n}\sum_{t<n}\rho(t)`.

    Same iteration (default): the glue calls :meth:`prepare` with the
    iteration's raw losses once both exist (after the detector's loss
    forward, before backward), then weights the classification loss. Given
    0-d tensors (the glue: the rank-averaged losses on the model's device),
    :meth:`prepare` returns :math:`w` as a device tensor (``torch.where``
    for the guards: no host read); :attr:`weights` reads it if asked before
    :meth:`step`, which sets the python state from the same losses as
    numbers (the same float64 ratio).
    ``lagged=True`` is the older form of mmdet_alwa, :math:`w(t) =
    \rho(t-1)` (the first iteration uses :math:`w = 1`), which needs no
    hook on the whole loss dict; with noisy losses the weighted
    classification loss then misses the regression loss by the noise of two
    iterations.

    Variant: the ratio-only Guided Loss of the paper. The authors' one-stage
    code additionally learns uncertainty weights on top of it; that part is not
    included (use :class:`UncertaintyWeighting` for learned weights).

    Under DDP :math:`\rho` is the ratio of the rank-averaged losses (for the
    RetinaNet warm-up the authors average over GPUs too), so every rank uses
    the same :math:`w`. An iteration whose losses are non-finite, or whose
    :math:`L_c \le` ``eps``, leaves :math:`w` at its last value and does not
    count towards the warm-up (the paper's "nan" on Libra R-CNN cannot come
    from the ratio).

    Shapes: two scalar losses per iteration; the state is python floats.

    Args:
        tasks: ``(classification, regression)`` names; exactly two.
        mode (str): ``'rpn'`` or ``'one_stage'``. Default ``'rpn'``.
        warmup (int): warm-up iterations of the one-stage form. Default 100.
        eps (float): smallest classification loss used for a ratio.
            Default 1e-12.
        lagged (bool): weight iteration :math:`t` with
            :math:`\rho(t-1)`. Default False (the paper's same-iteration
            ratio).
    """

    MODES = ('rpn', 'one_stage')

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 mode: str = 'rpn', warmup: int = 100,
                 eps: float = 1e-12, lagged: bool = False) -> None:
        super().__init__(tasks)
        if not isinstance(lagged, bool):
            raise ValueError(f'lagged must be a bool, got {lagged!r}')
        self.lagged = lagged
        self.same_iteration = not lagged
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
        # this iteration's ratio on the device, from prepare() until step()
        self._pending: Optional[torch.Tensor] = None

    @property
    def weights(self) -> Dict[str, float]:
        cls_task, reg_task = self.tasks
        ratio = self.ratio if self._pending is None else float(self._pending)
        return {cls_task: ratio, reg_task: 1.0}

    def _ratio(self, losses: Mapping[str, float]) -> Optional[float]:
        """:math:`L_r / L_c`, or None if it cannot be used."""
        cls_task, reg_task = self.tasks
        cls, reg = float(losses[cls_task]), float(losses[reg_task])
        if not (math.isfinite(cls) and math.isfinite(reg)) or cls <= self.eps:
            return None
        ratio = reg / cls
        return ratio if math.isfinite(ratio) else None

    def prepare(self, raw_losses: Mapping[str, Union[float, torch.Tensor]]
                ) -> Dict[str, Union[float, torch.Tensor]]:
        self._check_keys('raw_losses', raw_losses)
        cls_task, reg_task = self.tasks
        cls, reg = raw_losses[cls_task], raw_losses[reg_task]
        if self.frozen:
            return self.weights
        if not isinstance(cls, torch.Tensor) and \
                not isinstance(reg, torch.Tensor):
            ratio = self._ratio(raw_losses)
            if ratio is not None:
                self.ratio = ratio
            return self.weights
        # on the device, without a read: _ratio's guards as a mask
        device = (cls if isinstance(cls, torch.Tensor) else reg).device
        cls, reg = (torch.as_tensor(v, dtype=torch.float64, device=device)
                    if isinstance(v, torch.Tensor) else
                    torch.full((), float(v), dtype=torch.float64,
                               device=device) for v in (cls, reg))
        ratio = reg / cls
        usable = (torch.isfinite(cls) & torch.isfinite(reg)
                  & (cls > self.eps) & torch.isfinite(ratio))
        self._pending = torch.where(usable, ratio, self.ratio)
        return {cls_task: self._pending, reg_task: 1.0}

    def _update(self, losses: Dict[str, float], **signals) -> None:
        self._pending = None  # the same ratio, from the numbers below
        if self.frozen or len(losses) != 2:
            return
        ratio = self._ratio(losses)
        if ratio is None:
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
        self._pending = None
        self.ratio = float(state['ratio'])
        self.ratio_mean = float(state['ratio_mean'])
        self.num_ratios = int(state['num_ratios'])
        self.frozen = bool(state['frozen'])
