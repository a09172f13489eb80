"""IMTL-L: the loss-balancing part of Impartial Multi-Task Learning.

L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang,
"Towards Impartial Multi-task Learning", ICLR 2021, Sec. 3.2 (Eq. 3).
"""
import math
from typing import Dict, Sequence

import torch
from torchjd.scalarization import IMTLL

from .base import BaseWeighting
from .registry import register_rule
from .uncertainty import UncertaintyWeighting
from .validation import check_range

__all__ = ['IMTL_L']


@register_rule
class IMTL_L(UncertaintyWeighting):
    r"""IMTL-L: learnable scales that bring every scaled loss to 1.

    With a learnable :math:`s \in \mathbb R^K` (TorchJD's ``IMTLL``
    parameter ``log_scale``), the loss back-propagated is TorchJD's

    .. math::

        S(L, s) = \sum_k \big(e^{s_k} L_k - s_k\big), \qquad
        w_k = \frac{\partial S}{\partial L_k} = e^{s_k}

    trained jointly with the network by the main optimizer
    (:math:`\partial S/\partial s_k = e^{s_k} L_k - 1`, zero when the scaled
    loss :math:`e^{s_k} L_k` is 1). :meth:`weight_loss` returns
    :math:`e^{s_k} L_k`, :meth:`regularizer` returns TorchJD's ``IMTLL``
    of zero losses, :math:`-\sum_k s_k`, and :meth:`parameters` gives
    :math:`s` to the glue's param group: their sum is :math:`S` and its
    gradient in :math:`s` and in the network. This is uncertainty
    weighting's mechanism (:math:`S = 2\,\mathrm{UW}` at :math:`s = -s_
    \mathrm{UW}`, TorchJD's docstring), so the guards, the host reads and
    the state are :class:`UncertaintyWeighting`'s: a non-finite :math:`s`
    after a step is restored to its last finite value (``num_restored``).

    Init: :math:`s = ` ``init_log_scale`` (default 0: weights 1, plain
    mmdet's sum).

    Shapes: :math:`s`, the losses and the weights ``(K,)``.

    Example::

        >>> rule = IMTL_L(tasks=('cls', 'reg'))
        >>> rule.weights
        {'cls': 1.0, 'reg': 1.0}

    Args:
        tasks: names of the balanced losses.
        init_log_scale (float): initial :math:`s_k`, in [-20, 20].
            Default 0.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 init_log_scale: float = 0.0) -> None:
        init = check_range('init_log_scale', init_log_scale, -20, 20)
        super().__init__(tasks)
        self.scalarizer = IMTLL(len(self.tasks))
        with torch.no_grad():
            self.scalarizer.log_scale.fill_(init)
        # TorchJD's parameter is the one trained (the base class's name)
        self.log_vars = self.scalarizer.log_scale
        self._last_finite = self.log_vars.detach().clone()
        self._values_version = -1
        self._handed = False
        self._last_finite_values = list(self._log_var_values())

    @property
    def weights(self) -> Dict[str, float]:
        return {t: math.exp(v)
                for t, v in zip(self.tasks, self._log_var_values())}

    def weight_loss(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        s = self.log_vars[self.tasks.index(task)]
        return torch.exp(s.to(loss.device)) * loss

    def regularizer(self) -> torch.Tensor:
        return self.scalarizer(torch.zeros_like(self.log_vars))

    def log_scalars(self) -> Dict[str, float]:
        scalars = BaseWeighting.log_scalars(self)
        scalars.update({f'log_scale_{t}': v for t, v in
                        zip(self.tasks, self._log_var_values())})
        return scalars
