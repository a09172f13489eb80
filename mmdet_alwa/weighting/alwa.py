"""ALWA: Adaptive Loss Weight Adjustment (ALWA_1 / ALWA_2).

Paper: W. Yu, X. Shen, J. Hu, D. Yin, "Revisiting the Loss Weights in
Anchor-Based Detection" (University of Science and Technology of China;
Jiangsu Ocean University), preprint, Eq. 2 and Algorithm 1.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_int, check_positive, check_range

__all__ = ['ALWA']

_MODES = ('faithful', 'multiplicative')


def _mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (ddof=1); std is NaN for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    # plain float arithmetic: overflow gives inf (a guarded statistic)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) * (v - mean) for v in values) / (n - 1)
    return mean, math.sqrt(var)


@register_rule
class ALWA(BaseWeighting):
    r"""Adaptive Loss Weight Adjustment between classification and regression.

    The detector's multi-task loss (Eq. 2 of the paper) becomes

    .. math::
        L = \alpha \lambda_0 \hat L^{cls} + \lambda_0 \hat L^{reg},

    where :math:`\hat L^{cls}`, :math:`\hat L^{reg}` are the unweighted
    (scalar, shape ``()``) losses of one iteration and :math:`\alpha` is the
    *dynamic guidance factor*. Algorithm 1 (the default, ``mode='faithful'``):

    1. :math:`\alpha = 1`; two empty windows :math:`S^{cls}, S^{reg}`.
    2. Each step appends the *weighted* losses
       :math:`L^{cls} = \alpha\lambda_0\hat L^{cls}` and
       :math:`L^{reg} = \lambda_0\hat L^{reg}` to the windows.
    3. After every C-th step (step counts C, 2C, ...), over exactly the C
       steps since the last update: ``cls = mean(S^cls) + std(S^cls)``
       (ALWA_1) or ``cls = std(S^cls)`` (ALWA_2), likewise ``reg``; the
       standard deviation is the sample one (ddof=1), as in the authors' code.
       If ``cls > reg`` then :math:`\alpha = reg / cls`, else :math:`\alpha`
       is unchanged. Both windows are emptied.

    The new :math:`\alpha` applies from the next iteration on
    (:attr:`weights` is ``{'cls': α·λ0, 'reg': λ0}``). Algorithm 1 counts
    iterations from 0, so its ``i % C == 0`` also fires at ``i = 0`` on a
    one-sample window (undefined std: no update); counting steps from 1 as
    here gives windows of exactly C steps, shifted by one iteration.

    Because the windows hold *weighted* losses, the faithful update is
    :math:`\alpha \leftarrow \hat r / \alpha` whenever
    :math:`\alpha > \hat r`, with :math:`\hat r` the window's ratio of the
    *unweighted* statistics. After an update α ≈ r̂, so the noise of the next
    window decides: if its r̂ is lower, α jumps back near 1; if higher, α
    stays (it never rises again). On a stationary stream the faithful rule
    therefore oscillates between about r and 1, or sticks at a low first
    estimate. ``mode='multiplicative'`` balances without oscillating: at
    every window

    .. math:: \alpha \leftarrow \mathrm{clip}(\alpha \cdot reg / cls,
              \alpha_{min}, 1),

    which, since both statistics scale linearly with α, equals the ratio of
    the statistics of the *unweighted* losses (clipped); it can also raise α
    again when regression catches up. It is a fixed point on a stationary
    stream, at the price of departing from the published algorithm.

    First-window lock-in and ``start``. Algorithm 1 opens its first window
    at iteration 0, i.e. during the learning-rate warm-up, when
    :math:`\hat L^{cls}` falls fastest: its mean + std is then large, the
    first α is small, and since the faithful rule never raises α that value
    can stay for the whole run. ``start = S > 0`` leaves the first S steps
    out of every window (α stays 1 meanwhile), so the windows cover steps
    S+1..S+C, S+C+1..S+2C, ...; e.g. ``start`` = the warm-up length. ``start
    = 0`` (the default) is Algorithm 1.

    Guards: a non-finite loss is not recorded (counted by the base class and
    logged as ``nonfinite_<task>``); a statistic that is zero or non-finite
    (e.g. a window with fewer than two finite losses) leaves α unchanged; α
    is floored at ``alpha_min`` in both modes, so it is never NaN nor 0 (the
    floor never binds in the faithful mode unless ``reg/cls < alpha_min``).

    Args:
        variant (int): 1 for ALWA_1 (mean + std), 2 for ALWA_2 (std).
        interval (int): C, the number of steps per window (>= 2: the sample
            std of one value is undefined, so C = 1 would never update).
            The paper uses 100 and recommends [100, 500].
        init_weight (float): λ0 > 0, the initial loss weight of both tasks.
            The paper uses 1 and recommends λ0 <= 1.
        mode (str): ``'faithful'`` (Algorithm 1) or ``'multiplicative'``.
        alpha_min (float): lower bound of α, in (0, 1].
        start (int): steps left out before the first window, >= 0
            (default 0: Algorithm 1).
    """

    def __init__(self,
                 variant: int = 1,
                 interval: int = 100,
                 init_weight: float = 1.0,
                 mode: str = 'faithful',
                 alpha_min: float = 1e-4,
                 start: int = 0) -> None:
        super().__init__(tasks=('cls', 'reg'))
        if isinstance(variant, bool) or variant not in (1, 2):
            raise ValueError(f'variant must be 1 (ALWA_1) or 2 (ALWA_2), '
                             f'got {variant!r}')
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, got {mode!r}')
        self.variant = int(variant)
        self.interval = check_int('interval', interval, minimum=2)
        self.init_weight = check_positive('init_weight', init_weight)
        self.mode = mode
        self.alpha_min = check_range('alpha_min', alpha_min, 0.0, 1.0,
                                     low_inclusive=False)
        self.start = check_int('start', start, minimum=0)
        self.alpha = 1.0
        self.windows: Dict[str, List[float]] = {'cls': [], 'reg': []}
        self.num_windows = 0
        # statistics of the last evaluated window (None before the first)
        self.last_window: Optional[Dict[str, float]] = None

    @property
    def weights(self) -> Dict[str, float]:
        return {'cls': self.alpha * self.init_weight, 'reg': self.init_weight}

    def _update(self, losses: Dict[str, float], **signals) -> None:
        if self.num_steps <= self.start:
            return
        weights = self.weights
        for task, value in losses.items():
            self.windows[task].append(weights[task] * value)
        if (self.num_steps - self.start) % self.interval == 0:
            self._end_window()

    def _end_window(self) -> None:
        stats = {}
        for task, window in self.windows.items():
            mean, std = _mean_std(window)
            stats[f'{task}_mean'] = mean
            stats[f'{task}_std'] = std
            stats[task] = mean + std if self.variant == 1 else std
            window.clear()
        self.num_windows += 1
        self.last_window = stats
        cls, reg = stats['cls'], stats['reg']
        if not (math.isfinite(cls) and math.isfinite(reg)
                and cls > 0 and reg > 0):
            return
        if self.mode == 'faithful':
            if cls > reg:
                self.alpha = max(reg / cls, self.alpha_min)
        else:
            self.alpha = min(max(self.alpha * reg / cls, self.alpha_min), 1.0)

    def alpha_window(self) -> tuple:
        """``(windows evaluated so far, current α)``, pure python: what the
        hook's low-α warning (``LossWeightingHook(low_weight_warning=...)``)
        watches to count the consecutive windows that ended with a low α."""
        return self.num_windows, self.alpha

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars['alpha'] = self.alpha
        if self.last_window is not None:
            for key in ('cls_mean', 'cls_std', 'reg_mean', 'reg_std'):
                if math.isfinite(self.last_window[key]):
                    scalars[key] = self.last_window[key]
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(
            alpha=self.alpha,
            windows={t: list(w) for t, w in self.windows.items()},
            num_windows=self.num_windows,
            last_window=None if self.last_window is None else dict(
                self.last_window))

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        alpha = float(state['alpha'])
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f'state alpha must be finite and > 0, '
                             f'got {alpha!r}')
        self.alpha = alpha
        self.windows = {t: [float(v) for v in state['windows'][t]]
                        for t in self.tasks}
        self.num_windows = int(state['num_windows'])
        last = state.get('last_window')
        self.last_window = None if last is None else {
            k: float(v) for k, v in last.items()}

    def __repr__(self) -> str:
        return (f'ALWA(variant={self.variant}, interval={self.interval}, '
                f'init_weight={self.init_weight}, mode={self.mode!r}, '
                f'start={self.start}, '
                f'alpha={self.alpha:.6g})')
