"""Smooth Tchebycheff scalarization (STCH).

X. Lin, X. Zhang, Z. Yang, F. Liu, Z. Wang, Q. Zhang, "Smooth Tchebycheff
Scalarization for Multi-Objective Optimization", ICML 2024,
arXiv:2402.19078, Eq. 9.
"""
from typing import Optional, Sequence

import torch
from torchjd.scalarization import STCH as _TorchJDSTCH

from .registry import register_rule
from .scalarized import ScalarizerWeighting, _on_device
from .validation import check_positive

__all__ = ['STCH']


@register_rule
class STCH(ScalarizerWeighting):
    r"""STCH: a smooth maximum of the preference-weighted losses.

    With preferences :math:`\lambda` (uniform :math:`1/K` by default), an
    ideal point :math:`z^*` (0 by default) and smoothing :math:`\mu`:

    .. math::

        S(L) = \mu \log \sum_{k=1}^K
               \exp\Big(\frac{\lambda_k (L_k - z^*_k)}{\mu}\Big), \qquad
        w_k = c\,\frac{\partial S}{\partial L_k}
            = c\,\lambda_k\,\mathrm{softmax}_k\Big(
              \frac{\lambda (L - z^*)}{\mu}\Big)

    evaluated at this iteration's losses (same iteration, see
    :mod:`.scalarized`): the task with the largest weighted loss gets most
    of the weight, the more so the smaller :math:`\mu`. With uniform
    preferences the weights sum to :math:`c/K` (``scale=K`` gives the sum
    of plain mmdet's unit weights). Example: losses :math:`(1, 3)`,
    :math:`\mu = 1`: :math:`w = \tfrac12\,\mathrm{softmax}(0.5, 1.5) =
    (0.1345, 0.3655)`. The scalarizer is TorchJD's ``STCH``.

    Shapes: losses, ``weights``, ``reference`` and the output ``(K,)``.

    Example::

        >>> rule = STCH(tasks=('cls', 'reg'), mu=1.0)
        >>> w = rule.prepare({'cls': 1.0, 'reg': 3.0})
        >>> round(w['cls'], 4), round(w['reg'], 4)
        (0.1345, 0.3655)

    Args:
        tasks: names of the balanced losses.
        mu (float): :math:`\mu > 0`. Default 1.0 (the paper evaluates
            0.01 to 1; no value is best everywhere).
        preferences (sequence of float, optional): :math:`\lambda`, one per
            task. Default: uniform :math:`1/K`.
        reference (sequence of float, optional): :math:`z^*`, one per task.
            Default: none (0).
        scale (float): :math:`c`. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 mu: float = 1.0,
                 preferences: Optional[Sequence[float]] = None,
                 reference: Optional[Sequence[float]] = None,
                 scale: float = 1.0) -> None:
        super().__init__(tasks, scale)
        self.mu = check_positive('mu', mu)
        self.preferences = self._vector('preferences', preferences)
        self.reference = self._vector('reference', reference)
        if self.preferences is not None:
            for p in self.preferences:
                check_positive('preferences[i]', p)
        self._tensors = {}  # device -> TorchJD STCH with tensors there
        self._last_values()

    def _vector(self, name, values):
        if values is None:
            return None
        values = [float(v) for v in values]
        if len(values) != len(self.tasks):
            raise ValueError(f'STCH: {name} needs one value per task '
                             f'({len(self.tasks)}), got {values}')
        return values

    def _scalarizer(self, device: torch.device) -> _TorchJDSTCH:
        if device not in self._tensors:
            # written with fills on the device (no host-to-device copy)
            as_tensor = (lambda v: None if v is None else
                         _on_device(v, device))
            self._tensors[device] = _TorchJDSTCH(
                self.mu, as_tensor(self.preferences),
                as_tensor(self.reference))
        return self._tensors[device]

    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        return self._scalarizer(losses.device)(losses)
