"""GradNorm.

Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient
Normalization for Adaptive Loss Balancing in Deep Multitask Networks",
ICML 2018, arXiv:1711.02257, Eq. 1-2 and Algorithm 1.
"""
import math
from typing import Any, Dict, Mapping, Optional, Sequence

from .registry import register_rule
from .base import BaseWeighting
from .validation import check_int, check_positive, check_range

__all__ = ['GradNorm']


@register_rule
class GradNorm(BaseWeighting):
    r"""GradNorm: learn weights that equalise the tasks' gradient norms.

    Each iteration gets the losses :math:`L_i(t)` and, as signal
    ``grad_norm``, the *unweighted* gradient norms
    :math:`g_i(t) = \|\nabla_W L_i(t)\|_2` with respect to the chosen shared
    layer :math:`W` (the glue computes them before the main backward). With
    :math:`T` tasks:

    .. math::

        G_i = w_i g_i, \quad \bar G = \tfrac1T\textstyle\sum_j G_j, \quad
        \tilde L_i = L_i(t)/L_i(0), \quad
        r_i = \tilde L_i \big/ \tfrac1T\textstyle\sum_j \tilde L_j

        L_{grad} = \sum_i p_i\,\big|G_i - \bar G\,r_i^{\alpha}\big|_1

    with :math:`p_i = 1` (GradNorm; TDB uses inverse task frequencies). The
    target :math:`\bar G r_i^\alpha` is a constant (Algorithm 1), so
    :math:`\partial L_{grad}/\partial w_i = p_i\,\mathrm{sign}(G_i - \bar G
    r_i^\alpha)\,g_i`. One gradient step updates the weights, which are
    clamped at ``min_weight`` and renormalised to :math:`\sum_i w_i = T`.

    Step size (scale-free by default). :math:`g_i` carries the scale of the
    network's gradients, which differs by orders of magnitude between models
    and heads (on a tiny Mask R-CNN the mask loss's is ~500x the RPN's), so a
    fixed learning rate that suits one model swings the weights of another
    from 1.7 to the clamp in one step. With ``lr_scale='grad_norm'`` (default) the step is
    taken relative to the gradient-norm scale:

    .. math::

        w_i \leftarrow w_i - \eta\,p_i\,
        \mathrm{sign}(G_i - \bar G r_i^\alpha)\,g_i / \bar g,
        \qquad \bar g = \tfrac1T\textstyle\sum_j g_j

    i.e. GradNorm's SGD step with the learning rate :math:`\eta/\bar g`;
    with equal gradient norms a weight moves by :math:`\eta p_i`.
    ``lr_scale='absolute'`` is the plain step :math:`\eta p_i\,\mathrm{sign}
    \cdot g_i` (GradNorm's Algorithm 1 with SGD). Either way a step is
    bounded: before renormalisation a weight changes by at most a factor
    ``max_step_factor`` (default 2), so with the renormalisation a weight
    falls by at most ``max_step_factor ** 2`` in one step.

    :math:`L_i(0)` is the first finite, positive loss of task :math:`i`
    (an iteration without positives can give a zero loss, which would make
    :math:`\tilde L_i` infinite for the rest of the run); until every task
    has one the weights keep their initial values. An iteration with a
    non-finite loss or gradient norm leaves the weights unchanged (counted
    in ``num_skipped``); so the weights stay finite and positive whatever the
    losses do.

    Shapes: ``raw_losses`` and ``grad_norm`` are ``{task: float}``; the state
    is one weight and one initial loss per task.

    Args:
        tasks: names of the balanced losses.
        alpha (float): asymmetry :math:`\alpha \ge 0`. Default 1.5.
        lr (float): learning rate :math:`\eta` of the weights. Default 0.025.
        lr_scale (str): ``'grad_norm'`` (default, scale-free, see above) or
            ``'absolute'``.
        max_step_factor (float, optional): the largest factor by which one
            step may change a weight before renormalisation (> 1); None: no
            bound. Default 2.0.
        min_weight (float): lower clamp of a weight before renormalisation.
            Default 1e-3.
        eps (float): floor of the mean relative loss. Default 1e-12.
        interval (int): update the weights at the first step and every
            ``interval``-th one after it (Chen et al.: every step, 1, the
            default); the steps between keep them and need no gradient
            norms (:meth:`updates_next`; the glue then skips the per-task
            backward passes, the cost of this rule). Each update is the same
            step, so the weights move ``interval`` times fewer times.
    """

    required_signals = ('grad_norm',)
    LR_SCALES = ('grad_norm', 'absolute')

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 alpha: float = 1.5, lr: float = 0.025,
                 lr_scale: str = 'grad_norm',
                 max_step_factor: Optional[float] = 2.0,
                 min_weight: float = 1e-3, eps: float = 1e-12,
                 interval: int = 1) -> None:
        super().__init__(tasks)
        self.interval = check_int('interval', interval)
        self.alpha = check_range('alpha', alpha, 0, math.inf)
        self.lr = check_positive('lr', lr)
        if lr_scale not in self.LR_SCALES:
            raise ValueError(f'lr_scale must be one of {self.LR_SCALES}, '
                             f'got {lr_scale!r}')
        self.lr_scale = lr_scale
        self.max_step_factor = None if max_step_factor is None else \
            check_range('max_step_factor', max_step_factor, 1, math.inf,
                        low_inclusive=False)
        self.min_weight = check_range('min_weight', min_weight, 0, 1,
                                      low_inclusive=False)
        self.eps = check_positive('eps', eps)
        self._weights = {t: 1.0 for t in self.tasks}
        self.initial_loss: Dict[str, Optional[float]] = \
            {t: None for t in self.tasks}
        self.num_skipped = 0
        self.last_grad_loss: Optional[float] = None
        self.last_grad_norm: Dict[str, float] = {}

    @property
    def weights(self) -> Dict[str, float]:
        return dict(self._weights)

    def updates_next(self) -> bool:
        """Whether the next :meth:`step` updates the weights (and so needs
        its ``grad_norm``; other steps accept NaN norms)."""
        return self.num_steps % self.interval == 0

    def _penalties(self, **signals) -> Optional[Dict[str, float]]:
        """The factors :math:`p_i` of :math:`L_{grad}` (None: skip)."""
        return {t: 1.0 for t in self.tasks}

    def _update(self, losses: Dict[str, float], grad_norm: Mapping[str, float],
                **signals) -> None:
        self._check_keys('grad_norm', grad_norm)
        for task, value in losses.items():
            if self.initial_loss[task] is None and value > 0:
                self.initial_loss[task] = value
        penalties = self._penalties(**signals)
        if (self.num_steps - 1) % self.interval:  # a step between updates
            return
        norms = {t: float(grad_norm[t]) for t in self.tasks}
        if len(losses) != len(self.tasks) or penalties is None or any(
                v is None for v in self.initial_loss.values()) or not all(
                math.isfinite(g) and g >= 0 for g in norms.values()):
            self.num_skipped += 1
            return
        num = len(self.tasks)
        mean_norm = math.fsum(norms.values()) / num
        if mean_norm <= 0:  # no task has a gradient at W: nothing to balance
            self.num_skipped += 1
            return
        rel = {t: losses[t] / self.initial_loss[t] for t in self.tasks}
        mean_rel = max(math.fsum(rel.values()) / num, self.eps)
        big_g = {t: self._weights[t] * norms[t] for t in self.tasks}
        mean_g = math.fsum(big_g.values()) / num
        scale = mean_norm if self.lr_scale == 'grad_norm' else 1.0
        grad_loss, new = 0.0, {}
        for t in self.tasks:
            # r_i^alpha in log space: a loss jump of 1e6 cannot overflow
            log_r = math.log(max(rel[t] / mean_rel, self.eps))
            target = mean_g * math.exp(min(self.alpha * log_r, 300.0))
            diff = big_g[t] - target
            grad_loss += penalties[t] * abs(diff)
            sign = (diff > 0) - (diff < 0)
            w = self._weights[t]
            step = w - self.lr * penalties[t] * sign * norms[t] / scale
            if self.max_step_factor is not None:
                step = min(max(step, w / self.max_step_factor),
                           w * self.max_step_factor)
            new[t] = max(step, self.min_weight)
        if not all(math.isfinite(w) for w in new.values()):
            self.num_skipped += 1
            return
        total = math.fsum(new.values())
        self._weights = {t: num * w / total for t, w in new.items()}
        self.last_grad_loss = grad_loss
        self.last_grad_norm = norms

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        scalars.update({f'grad_norm_{t}': g
                        for t, g in self.last_grad_norm.items()})
        if self.last_grad_loss is not None and \
                math.isfinite(self.last_grad_loss):
            scalars['grad_loss'] = self.last_grad_loss
        scalars['num_skipped'] = float(self.num_skipped)
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(weights=dict(self._weights),
                    initial_loss=dict(self.initial_loss),
                    num_skipped=self.num_skipped)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._weights = {t: float(state['weights'][t]) for t in self.tasks}
        self.initial_loss = {t: state['initial_loss'][t] for t in self.tasks}
        self.num_skipped = int(state['num_skipped'])
