"""Unconditional Projection onto the dual cone of the gradients (UPGrad).

P. Quinton, V. Rey, "Jacobian Descent for Multi-Objective Optimization",
arXiv:2406.16232, 2024, Sec. 4 (Eq. 4, 5).
"""
from typing import Optional, Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import UPGradWeighting

from .gramian import GramianWeighting, missing_extra_error
from .gramian import pref_vector as _pref
from .registry import register_rule

__all__ = ['UPGrad']


@register_rule
class UPGrad(GramianWeighting):
    r"""UPGrad: the mean of each task gradient projected onto the dual cone of
    all of them.

    With :math:`G = J J^\top` (``(K, K)``) and the preference vector
    :math:`p` (default :math:`\tfrac1K \mathbf 1`), UPGrad's weights are

    .. math::

        w = \sum_k p_k\, u^{(k)}, \qquad
        u^{(k)} = \operatorname*{arg\,min}_{u \ge e_k} u^\top G u

    so that :math:`J^\top w` is the mean of the projections of the
    :math:`g_k` onto :math:`\{x : J x \ge 0\}`: it conflicts with no task
    (TorchJD's ``UPGradWeighting``; the quadratic programs are solved by
    quadprog on the CPU, the extra ``mmdet_alwa[quadprog]``).

    Example (TorchJD's docstring: :math:`J` = [[-4, 1, 1], [6, 1, 1]])::

        >>> J = torch.tensor([[-4., 1., 1.], [6., 1., 1.]])
        >>> w = UPGrad().prepare({'cls': 1.0, 'reg': 1.0}, gramian=J @ J.T)
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [1.1109, 0.7894]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        pref_vector (list, optional): :math:`p`, ``K`` numbers. Default
            the uniform mean.
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1,
                 pref_vector: Optional[Sequence[float]] = None,
                 scale: float = 1.0) -> None:
        self.pref_vector = pref_vector
        super().__init__(tasks, interval, scale)

    def build_weighting(self):
        try:
            return UPGradWeighting(
                pref_vector=_pref(self.pref_vector, len(self.tasks)))
        except ImportError as error:
            raise missing_extra_error('UPGrad', 'quadprog', error) from None
