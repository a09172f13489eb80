"""Sample-level dynamic balancing for softmax classifiers.

MTMLAN (T. Wang, S.-C. Chen, "Multi-Label Multi-Task Learning with Dynamic
Task Weight Balancing", IEEE IRI 2020), Eq. 9, after the focal loss
(Lin et al., ICCV 2017)::

    SL(p_k) = -(1 - p_k)^beta * log(p_k)

with ``p_k`` the predicted probability of sample ``k``'s true class: easy
samples (``p_k`` near 1) are down-weighted, ``beta`` sets how fast. ``beta=0``
is the cross-entropy.

mmdet's ``FocalLoss`` is the sigmoid form (RetinaNet, RPN); it also has the
class-balance factor alpha_t, which Eq. 9 has not: ``FocalLoss(gamma=beta,
alpha=0.5, loss_weight=2.0)`` is exactly Eq. 9 per binary sample. This module
is the softmax form, for RoI heads (``num_classes + 1`` logits with the
background last), a drop-in for their ``CrossEntropyLoss``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_alwa.weighting.validation import check_positive, check_range

__all__ = ['SampleLevelBalancedLoss']

_REDUCTIONS = ('none', 'mean', 'sum')


@MODELS.register_module()
class SampleLevelBalancedLoss(nn.Module):
    """Eq. 9 on softmax probabilities.

    Args:
        beta (float): the sample-level focusing parameter, >= 0. Default 2.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Default
            ``'mean'``.
        loss_weight (float): a constant factor. Default 1.0.

    Shapes: ``cls_score`` ``(N, C)`` logits, ``label`` ``(N,)`` in
    ``[0, C)``, ``weight`` ``(N,)`` or None; returns a scalar (or ``(N,)``
    with ``reduction='none'``).
    """

    def __init__(self, beta: float = 2.0, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.beta = check_range('beta', beta, 0, float('inf'))
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, '
                             f'got {reduction!r}')
        self.reduction = reduction
        self.loss_weight = check_positive('loss_weight', loss_weight)

    def forward(self, cls_score: Tensor, label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        if reduction_override not in (None, ) + _REDUCTIONS:
            raise ValueError(f'reduction_override must be one of '
                             f'{_REDUCTIONS}, got {reduction_override!r}')
        reduction = reduction_override or self.reduction
        log_p = F.log_softmax(cls_score.float(), dim=1).gather(
            1, label.long().unsqueeze(1)).squeeze(1)
        # the clamp keeps the gradient of (1-p)^beta finite at p = 1, beta < 1
        loss = -torch.pow((1 - log_p.exp()).clamp(min=1e-12), self.beta) * log_p
        if weight is not None:
            weight = weight.float()
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction=reduction, avg_factor=avg_factor)
