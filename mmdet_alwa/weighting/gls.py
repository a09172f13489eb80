"""Geometric Loss Strategy (GLS): the geometric mean of the task losses.

S. Chennupati, G. Sistu, S. Yogamani, S. A. Rawashdeh, "MultiNet++:
Multi-Stream Feature Aggregation and Geometric Loss Strategy for Multi-Task
Learning", CVPR Workshops 2019, arXiv:1904.08492, Eq. 3.
"""
from typing import Sequence

import torch
from torchjd.scalarization import GeometricMean

from .registry import register_rule
from .scalarized import ScalarizerWeighting

__all__ = ['GLS']


@register_rule
class GLS(ScalarizerWeighting):
    r"""GLS: minimise the geometric mean of the :math:`K` task losses.

    .. math::

        S(L) = \Big(\prod_{k=1}^K L_k\Big)^{1/K}, \qquad
        w_k = c\,\frac{\partial S}{\partial L_k} = c\,\frac{S(L)}{K\,L_k}

    evaluated at this iteration's losses (same iteration, see
    :mod:`.scalarized`): a task whose loss is small relative to the others
    gets a large weight. Example: losses :math:`(1, 4)` give :math:`S = 2`
    and :math:`w = (1, 0.25)`. The scalarizer is TorchJD's
    ``GeometricMean``; a zero loss gives :math:`0 \cdot \infty` and falls
    back to the previous weights, a negative loss is TorchJD's
    ``ValueError``. (TorchJD checks the sign with a Python ``if`` on the
    loss tensor: on a GPU that is one host sync per iteration inside
    TorchJD.)

    Shapes: losses ``(K,)``, weights ``(K,)``; the state is python floats.

    Example::

        >>> rule = GLS(tasks=('cls', 'reg'))
        >>> rule.prepare({'cls': 1.0, 'reg': 4.0})
        {'cls': 1.0, 'reg': 0.25}

    Args:
        tasks: names of the balanced losses.
        scale (float): :math:`c`. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 scale: float = 1.0) -> None:
        super().__init__(tasks, scale)
        self.scalarizer = GeometricMean()
        self._last_values()

    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        return self.scalarizer(losses)
