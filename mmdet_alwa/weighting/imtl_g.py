"""IMTL-G: the gradient-balancing part of Impartial Multi-Task Learning.

L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang,
"Towards Impartial Multi-task Learning", ICLR 2021, Sec. 3.3 (Eq. 9-11).
"""
from typing import Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import IMTLGWeighting

from .gramian import GramianWeighting
from .registry import register_rule

__all__ = ['IMTL_G']


@register_rule
class IMTL_G(GramianWeighting):
    r"""IMTL-G: the update whose projections onto every unit task gradient are
    equal.

    With :math:`u_k = g_k / \|g_k\|`, IMTL-G finds :math:`w` (summing to
    1) such that :math:`(J^\top w) \cdot u_k` is the same for every
    :math:`k`; TorchJD's ``IMTLGWeighting`` solves it from :math:`G = J
    J^\top` (``(K, K)``) alone, with a pseudo-inverse.

    Example (orthogonal gradients of norms 1 and 2: equal projections need
    :math:`w_1 \cdot 1 = w_2 \cdot 2`, so :math:`w = (2/3, 1/3)`)::

        >>> G = torch.tensor([[1., 0.], [0., 4.]])
        >>> w = IMTL_G().prepare({'cls': 1.0, 'reg': 1.0}, gramian=G)
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [0.6667, 0.3333]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1,
                 scale: float = 1.0) -> None:
        super().__init__(tasks, interval, scale)

    def build_weighting(self):
        return IMTLGWeighting()
