"""Triplet losses with online mining, and MATL's multi-annotation triplet loss.

Zhou et al., "Multi-Task Learning with Multi-Annotation Triplet Loss for
Improved Object Detection" (IGARSS 2025). For an anchor ``a``, a positive
``p`` (same label, ``p != a``) and a negative ``n`` (other label), Eq. 1::

    L(a, p, n) = max(d(f(a), f(p)) - d(f(a), f(n)) + m, 0)

with ``d`` the Euclidean distance and ``m`` the margin. MATL (Eq. 3-5) adds a
triplet loss on box-shape labels ``b`` to the one on class labels ``y``::

    L_MATL = (1 - lambda) * L(y) + lambda * L(b)

Mining, for ``N`` embeddings of shape ``(N, D)`` and labels ``(N,)``:

* ``batch_all`` (the authors' code, after Hermans et al. 2017): every valid
  triplet, the loss averaged over the *positive* ones (loss > 1e-16);
* ``batch_hard`` (Hermans et al. 2017): per anchor the farthest positive and
  the nearest negative, averaged over the anchors that have both.

With no valid triplet (fewer than 2 labels, a lone sample...) both give an
exact zero that is still connected to the embeddings, so DDP sees a gradient
(of zeros) for every parameter that produced them.
"""
from typing import Optional, Tuple

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_alwa.weighting.validation import check_positive, check_range

__all__ = [
    'pairwise_distances', 'batch_all_triplet_loss', 'batch_hard_triplet_loss',
    'MultiAnnotationTripletLoss'
]

_MINERS = ('batch_all', 'batch_hard')


def _check_inputs(embeddings: Tensor, labels: Tensor) -> None:
    if embeddings.dim() != 2 or labels.dim() != 1 or \
            labels.numel() != embeddings.size(0):
        raise ValueError('embeddings must be (N, D) and labels (N,), got '
                         f'{tuple(embeddings.shape)} and {tuple(labels.shape)}')


def pairwise_distances(embeddings: Tensor) -> Tensor:
    """``(N, N)`` Euclidean distances of ``(N, D)`` embeddings.

    As in the authors' code: ``|a|^2 - 2<a, b> + |b|^2`` clamped at 0, and the
    square root's infinite gradient at 0 kept out of the zero distances. In
    float32 even under autocast: the 1e-16 guard underflows in half precision.
    """
    with torch.autocast(embeddings.device.type, enabled=False):
        emb = embeddings.float()
        dot = emb @ emb.t()
        sq = dot.diagonal()
        d2 = (sq[:, None] - 2 * dot + sq[None, :]).clamp(min=0)
        zero = d2 == 0
        return torch.sqrt(d2 + zero.float() * 1e-16) * (~zero).float()


def _zero(embeddings: Tensor) -> Tensor:
    return embeddings.sum() * 0


def _triplet_masks(embeddings: Tensor, labels: Tensor
                   ) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
    """``(distances, positive mask, negative mask)``, each ``(N, N)``, of
    checked inputs; None for fewer than 3 embeddings (no triplet).

    ``positive[a, p]``: same label and ``p != a``; ``negative[a, n]``:
    another label.
    """
    _check_inputs(embeddings, labels)
    if embeddings.size(0) < 3:
        return None
    dist = pairwise_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    pos_mask = same & ~torch.eye(
        labels.numel(), dtype=torch.bool, device=labels.device)
    return dist, pos_mask, ~same


def batch_all_triplet_loss(embeddings: Tensor, labels: Tensor,
                           margin: float) -> Tuple[Tensor, Tensor]:
    """Mean of Eq. 1 over the positive valid triplets.

    Returns ``(loss, fraction of valid triplets that are positive)``.
    The ``N^3`` triplets are not materialised: for an anchor ``a`` and a
    positive ``p``, the negatives with a positive loss are those with
    ``d(a, n) < d(a, p) + m``; with each anchor's negative distances sorted
    and cumulated, their count ``c`` and distance sum ``S`` come from a binary
    search, and the triplets contribute ``c * (d(a, p) + m) - S``
    (``O(N^2 log N)`` time, ``O(N^2)`` memory, the same gradients).
    """
    masks = _triplet_masks(embeddings, labels)
    if masks is None:
        return _zero(embeddings), embeddings.new_zeros(())
    dist, pos_mask, neg_mask = masks
    neg_sorted = torch.where(neg_mask, dist,
                             dist.new_full((), float('inf'))).sort(dim=1)[0]
    finite = torch.isfinite(neg_sorted)
    csum = torch.where(finite, neg_sorted, 0).cumsum(dim=1)
    csum = torch.cat([csum.new_zeros(csum.size(0), 1), csum], dim=1)
    thresh = (dist + margin).detach()
    count = torch.searchsorted(neg_sorted.detach().contiguous(),
                               thresh.contiguous())  # (a, p): # n below
    pair_loss = count * (dist + margin) - csum.gather(1, count)
    count = count * pos_mask
    num_pos = count.sum()
    num_valid = (pos_mask.sum(1) * neg_mask.sum(1)).sum()
    frac = num_pos.float() / num_valid.clamp(min=1)
    if num_pos == 0:
        return _zero(embeddings), frac
    return (pair_loss * pos_mask).sum() / num_pos, frac


def batch_hard_triplet_loss(embeddings: Tensor, labels: Tensor,
                            margin: float) -> Tuple[Tensor, Tensor]:
    """Eq. 1 with the hardest positive and negative of each anchor.

    Returns ``(mean over the anchors that have a positive and a negative,
    fraction of those anchors whose loss is positive)``.
    """
    masks = _triplet_masks(embeddings, labels)
    if masks is None:
        return _zero(embeddings), embeddings.new_zeros(())
    dist, pos_mask, neg_mask = masks
    anchors = pos_mask.any(1) & neg_mask.any(1)
    if not anchors.any():
        return _zero(embeddings), embeddings.new_zeros(())
    hardest_pos = torch.where(pos_mask, dist, dist.new_full((), -1)).amax(1)
    hardest_neg = torch.where(neg_mask, dist,
                              dist.new_full((), float('inf'))).amin(1)
    loss = (hardest_pos - hardest_neg + margin).clamp(min=0)[anchors]
    return loss.mean(), (loss > 0).float().mean()


@MODELS.register_module()
class MultiAnnotationTripletLoss(nn.Module):
    """``loss_weight * ((1 - box_weight) * L(class) + box_weight * L(box))``.

    Args:
        box_weight (float): MATL's lambda in [0, 1]; 0 is the class-only
            triplet loss (the paper's CLTL baseline). Defaults to 0.5.
        margin (float): the margin m > 0. Defaults to 0.1 (authors' code).
        mining (str): ``'batch_all'`` (authors' code) or ``'batch_hard'``.
        loss_weight (float): overall factor > 0. Defaults to 1.0.

    ``forward(embeddings (N, D), class_labels (N,), box_labels (N,) or None)``
    returns a scalar. ``box_labels`` may be None only when ``box_weight`` is 0.
    After each call, :attr:`last_positive_fraction` holds the detached
    fractions of positive triplets ``{'cls': t, 'box': t}`` for logging.
    """

    def __init__(self,
                 box_weight: float = 0.5,
                 margin: float = 0.1,
                 mining: str = 'batch_all',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.box_weight = check_range('box_weight', box_weight, 0, 1)
        self.margin = check_positive('margin', margin)
        if mining not in _MINERS:
            raise ValueError(f'mining must be one of {_MINERS}, got {mining!r}')
        self.mining = mining
        self.loss_weight = check_positive('loss_weight', loss_weight)
        self._fn = batch_all_triplet_loss if mining == 'batch_all' \
            else batch_hard_triplet_loss
        self.last_positive_fraction = {}

    def forward(self, embeddings: Tensor, class_labels: Tensor,
                box_labels: Optional[Tensor] = None) -> Tensor:
        cls_loss, cls_frac = self._fn(embeddings, class_labels, self.margin)
        fracs = dict(cls=cls_frac.detach())
        loss = (1 - self.box_weight) * cls_loss
        if self.box_weight > 0:
            if box_labels is None:
                raise ValueError('box_labels are required when box_weight > 0')
            box_loss, box_frac = self._fn(embeddings, box_labels, self.margin)
            fracs['box'] = box_frac.detach()
            loss = loss + self.box_weight * box_loss
        self.last_positive_fraction = fracs
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'box_weight={self.box_weight}, margin={self.margin}, '
                f'mining={self.mining!r}, loss_weight={self.loss_weight}')
