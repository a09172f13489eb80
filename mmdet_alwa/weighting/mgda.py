"""The Multiple Gradient Descent Algorithm (MGDA), as in MGDA-UB.

J.-A. Désidéri, "Multiple-gradient descent algorithm (MGDA) for
multiobjective optimization", C. R. Math. 350, 2012; O. Sener, V. Koltun,
"Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018
(Eq. 3 and Algorithm 2; the representation Gramian of Sec. 3.3).
"""
from typing import Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import MGDAWeighting

from .gramian import GramianWeighting
from .registry import register_rule
from .validation import check_int, check_positive

__all__ = ['MGDA']


@register_rule
class MGDA(GramianWeighting):
    r"""MGDA: the minimum-norm convex combination of the task gradients.

    With :math:`G = J J^\top` (``(K, K)``):

    .. math::

        w = \operatorname*{arg\,min}_{w \ge 0,\ \sum_k w_k = 1} w^\top G w

    solved by Frank-Wolfe (TorchJD's ``MGDAWeighting``, Sener & Koltun's
    Algorithm 2, stopped after ``max_iters`` or a step below ``epsilon``).
    With :math:`G` taken at the shared representation this is MGDA-UB.

    Example (two opposed gradients of norms 2 and 1: :math:`w = (1/3, 2/3)`,
    whose combination is zero)::

        >>> G = torch.tensor([[4., -2.], [-2., 1.]])
        >>> w = MGDA().prepare({'cls': 1.0, 'reg': 1.0}, gramian=G)
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [0.3333, 0.6667]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        epsilon (float): Frank-Wolfe's stopping step. Default 0.001.
        max_iters (int): Frank-Wolfe's iterations at most. Default 100.
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1,
                 epsilon: float = 0.001,
                 max_iters: int = 100,
                 scale: float = 1.0) -> None:
        self.epsilon = check_positive('epsilon', epsilon)
        self.max_iters = check_int('max_iters', max_iters)
        super().__init__(tasks, interval, scale)

    def build_weighting(self):
        return MGDAWeighting(epsilon=self.epsilon, max_iters=self.max_iters)
