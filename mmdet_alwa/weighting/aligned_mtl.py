"""Aligned-MTL: aligning the gradients' principal components.

D. Senushkin, N. Patakin, A. Kuznetsov, A. Konushin, "Independent Component
Alignment for Multi-Task Learning", CVPR 2023, Algorithm 1.
"""
from typing import Optional, Sequence

import torch  # noqa: F401 (the doctest's namespace)
from torchjd.aggregation import AlignedMTLWeighting

from .gramian import GramianWeighting
from .gramian import pref_vector as _pref
from .registry import register_rule

__all__ = ['AlignedMTL']


@register_rule
class AlignedMTL(GramianWeighting):
    r"""Aligned-MTL: the update of a stable (condition number 1) Jacobian.

    With the eigen-decomposition :math:`G = J J^\top = V \Sigma^2 V^\top`
    (``(K, K)``), the weights are

    .. math::

        w = \sigma_{\min}\, V \Sigma^{-1} V^\top p

    (:math:`\sigma_{\min}` the smallest non-zero singular value for
    ``scale_mode='min'``, the paper's; :math:`p` the preference vector,
    default uniform), TorchJD's ``AlignedMTLWeighting``.

    Example (orthogonal gradients of norms 1 and 2: each is rescaled to the
    smallest norm, :math:`w = (1/2, 1/4)` with :math:`p = (1/2, 1/2)`)::

        >>> G = torch.tensor([[1., 0.], [0., 4.]])
        >>> w = AlignedMTL().prepare({'cls': 1.0, 'reg': 1.0}, gramian=G)
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [0.5, 0.25]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        pref_vector (list, optional): :math:`p`, ``K`` numbers. Default
            uniform.
        scale_mode (str): ``'min'`` (default, the paper), ``'median'`` or
            ``'rmse'``: which singular value :math:`\sigma` scales the
            update.
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1,
                 pref_vector: Optional[Sequence[float]] = None,
                 scale_mode: str = 'min',
                 scale: float = 1.0) -> None:
        self.pref_vector = pref_vector
        if scale_mode not in ('min', 'median', 'rmse'):
            raise ValueError(f'scale_mode must be "min", "median" or '
                             f'"rmse", got {scale_mode!r}')
        self.scale_mode = scale_mode
        super().__init__(tasks, interval, scale)

    def build_weighting(self):
        return AlignedMTLWeighting(
            pref_vector=_pref(self.pref_vector, len(self.tasks)),
            scale_mode=self.scale_mode)
