"""Conflict-Averse Gradient descent (CAGrad).

B. Liu, X. Liu, X. Jin, P. Stone, Q. Liu, "Conflict-Averse Gradient Descent
for Multi-task Learning", NeurIPS 2021, Algorithm 1 (Eq. 4).
"""
from typing import Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import CAGradWeighting

from .gramian import GramianWeighting, missing_extra_error
from .registry import register_rule
from .validation import check_range

__all__ = ['CAGrad']


@register_rule
class CAGrad(GramianWeighting):
    r"""CAGrad: the update that maximises the worst task's improvement within a
    ball around the mean gradient.

    With :math:`g_0 = \tfrac1K J^\top \mathbf 1` and :math:`G = J J^\top`
    (``(K, K)``), CAGrad solves the dual

    .. math::

        w^* = \operatorname*{arg\,min}_{w \in \Delta}
        g_w^\top g_0 + \sqrt{\phi}\, \|g_w\|, \quad
        g_w = J^\top w, \quad \phi = c^2 \|g_0\|^2

    and updates along :math:`g_0 + \frac{\sqrt\phi}{\|g_{w^*}\|} g_{w^*}`
    (TorchJD's ``CAGradWeighting``; the convex program is solved by cvxpy
    on the CPU, the extra ``mmdet_alwa[cagrad]``). :math:`c = 0` is the
    mean gradient.

    Example (orthogonal unit gradients: no conflict to avert)::

        >>> w = CAGrad().prepare({'cls': 1.0, 'reg': 1.0},
        ...                      gramian=torch.eye(2))
        >>> [round(float(w[t]), 2) for t in ('cls', 'reg')]
        [0.7, 0.7]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        c (float): :math:`c \ge 0`, the radius of the ball relative to the
            mean gradient. Default 0.4 (the paper's NYU-v2 and Cityscapes
            experiments).
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1,
                 c: float = 0.4,
                 scale: float = 1.0) -> None:
        self.c = check_range('c', c, 0.0, 1e6)
        super().__init__(tasks, interval, scale)

    def build_weighting(self):
        try:
            return CAGradWeighting(c=self.c)
        except ImportError as error:
            raise missing_extra_error('CAGrad', 'cagrad', error) from None
