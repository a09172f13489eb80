"""Task-level Dynamic Balancing (TDB).

T. Wang, S.-C. Chen, "Multi-Label Multi-Task Learning with Dynamic Task
Weight Balancing" (MTMLAN), IEEE IRI 2020, Eq. 10-16.
"""
import math
from typing import Any, Dict, Mapping, Optional, Sequence

from .registry import register_rule
from .gradnorm import GradNorm

__all__ = ['TDB']


@register_rule
class TDB(GradNorm):
    r"""GradNorm with an inverse task-frequency penalty.

    Eq. 10-16 of the paper, with :math:`\theta` the restoring force and
    :math:`T` the number of tasks:

    .. math::

        TL(t) = \sum_j \frac{N}{n_j}\Big|G_W^{(j)}(t)
                - \bar G_W(t)\,r_j(t)^{\theta}\Big|_1 \quad (10)

        G_W^{(j)} = \|\nabla_W w_j L_j\|_2 \;(11), \quad
        \bar G_W = E_T[G_W^{(j)}] \;(12), \quad
        r_j = \hat L_j / E_T[\hat L_j] \;(13), \quad
        \hat L_j = L_j(t)/L_j(0) \;(14)

        w_j(t+1) = \lambda\,w_j(t) \;(15), \qquad
        \lambda = T / \textstyle\sum_j w_j(t+1) \;(16)

    The weight update itself (steps 8-10 of the paper) is :class:`GradNorm`'s:
    one SGD step on :math:`TL` with the target held constant, clamp, then
    the renormalisation (15)-(16) to :math:`\sum_j w_j = T`.

    :math:`n_j` for detection (signal ``num_samples``): the number of samples
    task :math:`j`'s loss is computed over in an iteration -- the sampled
    (non-ignored) anchors/proposals for classification, the positive samples
    for regression -- accumulated over all iterations so far, and
    :math:`N = \sum_j n_j`. The paper's :math:`N/n_j` are dataset counts; the
    running sums converge to them. Because a common factor of all
    :math:`N/n_j` only rescales the learning rate, the penalties are divided
    by their mean (so ``lr`` means the same as in GradNorm; with RetinaNet
    :math:`N/n_{reg}` alone is ~1e3). Until every task has a sample the update
    is skipped.

    The paper's text takes :math:`W` from "the last layer of the shared
    network" (and, in its step list, from the first layer of each
    task-specific network); mmdet_alwa uses the shared layer, as GradNorm.

    Shapes: ``raw_losses``, ``grad_norm`` and ``num_samples`` are
    ``{task: float}``; the state adds one running count per task.

    Args:
        tasks: names of the balanced losses.
        theta (float): restoring force :math:`\theta \ge 0` (the paper's best
            value is 1). Default 1.0.
        lr, lr_scale, max_step_factor, min_weight, eps, interval: as
            :class:`GradNorm` (the step is scale-free and bounded by
            default).
    """

    required_signals = ('grad_norm', 'num_samples')

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 theta: float = 1.0, lr: float = 0.025,
                 lr_scale: str = 'grad_norm',
                 max_step_factor: Optional[float] = 2.0,
                 min_weight: float = 1e-3, eps: float = 1e-12,
                 interval: int = 1) -> None:
        super().__init__(tasks, alpha=theta, lr=lr, lr_scale=lr_scale,
                         max_step_factor=max_step_factor,
                         min_weight=min_weight, eps=eps, interval=interval)
        self.sample_counts = {t: 0.0 for t in self.tasks}

    @property
    def theta(self) -> float:
        return self.alpha

    def _penalties(self, num_samples: Mapping[str, float],
                   **signals) -> Optional[Dict[str, float]]:
        self._check_keys('num_samples', num_samples)
        for task in self.tasks:
            n = float(num_samples[task])
            if math.isfinite(n) and n > 0:
                self.sample_counts[task] += n
        if not all(n > 0 for n in self.sample_counts.values()):
            return None
        total = math.fsum(self.sample_counts.values())
        inv = {t: total / n for t, n in self.sample_counts.items()}
        mean = math.fsum(inv.values()) / len(inv)
        return {t: v / mean for t, v in inv.items()}

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        total = math.fsum(self.sample_counts.values())
        if total > 0:
            scalars.update({f'task_frequency_{t}': n / total
                            for t, n in self.sample_counts.items()})
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        return dict(super()._extra_state(),
                    sample_counts=dict(self.sample_counts))

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        super()._load_extra_state(state)
        self.sample_counts = {t: float(state['sample_counts'][t])
                              for t in self.tasks}
