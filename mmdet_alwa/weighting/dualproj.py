"""Projection of the mean gradient onto the dual cone (DualProj).

P. Quinton, V. Rey, "Jacobian Descent for Multi-Objective Optimization",
arXiv:2406.16232, 2024, Appendix (DualProj).
"""
from typing import Optional, Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import DualProjWeighting

from .gramian import GramianWeighting, missing_extra_error
from .gramian import pref_vector as _pref
from .registry import register_rule

__all__ = ['DualProj']


@register_rule
class DualProj(GramianWeighting):
    r"""DualProj: the mean gradient projected onto the dual cone of the task
    gradients.

    With :math:`G = J J^\top` (``(K, K)``) and the preference vector
    :math:`p` (default :math:`\tfrac1K \mathbf 1`):

    .. math::

        w = \operatorname*{arg\,min}_{u \ge p} u^\top G u

    so :math:`J^\top w` is the projection of :math:`J^\top p` onto
    :math:`\{x : J x \ge 0\}` (TorchJD's ``DualProjWeighting``; quadprog on
    the CPU, the extra ``mmdet_alwa[quadprog]``).

    Example (orthogonal gradients conflict with nothing: the mean stays)::

        >>> w = DualProj().prepare({'cls': 1.0, 'reg': 1.0},
        ...                        gramian=torch.eye(2))
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [0.5, 0.5]

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
            return DualProjWeighting(
                pref_vector=_pref(self.pref_vector, len(self.tasks)))
        except ImportError as error:
            raise missing_extra_error('DualProj', 'quadprog', error) from None
