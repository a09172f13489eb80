r"""Per-sample task measures of a detector's loss inputs (DTP's KPIs).

Pure functions of the tensors a head passes to its loss modules; each returns
:class:`Scores`, one score in [0, 1] per sample and a mask of the samples the
loss is computed over, so that a caller can average over the calls of one
iteration (dense heads call their losses once per FPN level) without a
device sync per call. Why each is the natural "performance" of its task for
DTP (Guo et al., "Dynamic Task Prioritization for Multitask Learning",
ECCV 2018, Sec. 3: a KPI in [0, 1] that rises as the task is learnt, e.g.
accuracy or mean IoU):

- :func:`cls_accuracy`: the fraction of samples whose predicted label
  (foreground class or background) is the target label -- the accuracy of
  the classification task itself.
- :func:`box_iou`: the IoU of the predicted and target box of each positive
  -- the quantity box regression is trained to raise and detection's
  matching criterion. Deltas are decoded first (:func:`decode_deltas`),
  DFL's distributions are turned into boxes (:func:`distribution_boxes`).
- :func:`mask_iou`: the IoU of the binarised predicted mask and the target
  mask -- the mask task's own matching criterion (mask AP thresholds it).
- :func:`quality_score`: :math:`1 - |\sigma(p) - t|` for a quality branch
  (centerness, IoU prediction) trained on a target :math:`t \in [0, 1]`
  with binary cross-entropy -- one minus its mean absolute error, 1 when the
  predicted quality is the target.

Also :func:`find_shared_layer`, the default :math:`W` of GradNorm and TDB.
"""
import math
from typing import Iterable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['Scores', 'cls_accuracy', 'box_iou', 'aligned_iou',
           'decode_deltas', 'unit_delta_xywh', 'distribution_boxes',
           'mask_iou',
           'quality_score', 'sample_mask', 'find_shared_layer']


class Scores(NamedTuple):
    """``value``: (N,) float scores in [0, 1]; ``valid``: (N,) bool, the
    samples the loss is computed over (``value`` elsewhere is meaningless)."""
    value: Tensor
    valid: Tensor


#: integer types as wide as a row of 2, 4, 8 bools
_ROW_WORDS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def sample_mask(weight: Optional[Tensor], num: int,
                device: torch.device) -> Tensor:
    """The samples with a positive weight: ``weight`` (N,) or (N, K) (a row
    counts when any of its K weights is positive); None: all N samples."""
    if weight is None:
        return torch.ones(num, dtype=torch.bool, device=device)
    if weight.numel() == 0:
        return torch.zeros(num, dtype=torch.bool, device=device)
    positive = weight.reshape(num, -1) > 0
    if positive.size(1) == 1:
        return positive[:, 0]
    if positive.size(1) in _ROW_WORDS:
        # a row of 2/4/8 bools read as one integer: nonzero iff any is True;
        # ~5x faster than any(1) on the (N, 4) box weights of a dense
        # head's ~10^5 anchors
        return positive.view(_ROW_WORDS[positive.size(1)])[:, 0] != 0
    return positive.any(dim=1)


def cls_accuracy(pred: Tensor, target, weight: Optional[Tensor] = None,
                 use_sigmoid: bool = True) -> Scores:
    """Classification accuracy per sample.

    Args:
        pred (Tensor): (N, C) sigmoid or (N, C + 1) softmax logits.
        target (Tensor | tuple): (N,) integer labels, background = number of
            foreground classes; or QFL-style ``(labels, scores)`` soft
            targets (mmdet's ``QualityFocalLoss``: GFL, RTMDet), whose
            ``labels`` are used (the scores are the quality target, a
            regression quantity).
        weight (Tensor, optional): (N,) or (N, C) label weights; samples
            with no positive weight are not counted. Default: all.
        use_sigmoid (bool): the loss's activation.

    Returns:
        Scores: 1.0 where the predicted label is the target, else 0.0;
        ``valid`` also excludes labels outside [0, background] (ignored).
        The predicted label: softmax, the arg-max channel; sigmoid, the best
        class if its probability exceeds 0.5, else background. A target
        tied with another channel for the top score counts as predicted.
    """
    labels = target[0] if isinstance(target, (tuple, list)) else target
    labels = labels.reshape(-1)
    num_fg = pred.size(1) if use_sigmoid else pred.size(1) - 1
    valid = (labels >= 0) & (labels <= num_fg)
    if weight is not None:
        valid &= sample_mask(weight, labels.numel(), pred.device)
    # the target's score against the best one: no arg-max, which costs
    # ~3x a max over few classes and dense heads pass ~10^5 anchors a call
    best = _row_max(pred)
    score = pred.gather(1, labels.clamp(0, pred.size(1) - 1)[:, None])[:, 0]
    correct = score >= best
    if use_sigmoid:
        correct = torch.where(labels == num_fg, best <= 0,
                              correct & (best > 0))
    return Scores(correct.to(pred.dtype), valid)


def _row_max(x: Tensor) -> Tensor:
    """``x.amax(dim=1)`` of an (N, C) tensor; as a max-pool over its C-wide
    rows when it is contiguous: ~3x faster on CPU for the few classes of a
    dense head (amax over a short inner dimension does not vectorise)."""
    if x.numel() == 0 or not x.is_contiguous():
        return x.amax(dim=1)
    c = x.size(1)
    return F.max_pool1d(x.reshape(1, 1, -1), c, c).reshape(-1)


def decode_deltas(bbox_coder, pred: Tensor, target: Tensor):
    """Decode (N, 4) regression deltas and their targets against one unit
    anchor ``(0, 0, 1, 1)``.

    The IoU of two boxes is invariant to a common translation and to a
    common per-axis scale, and mmdet's delta coders (``DeltaXYWHBBoxCoder``,
    ``TBLRBBoxCoder``...) decode relative to the anchor's centre and size,
    so the IoU of the decoded pair is that of the real boxes of the real
    anchor. Returns the two (N, 4) decoded box tensors.

    ``DeltaXYWHBBoxCoder`` (without ``add_ctr_clamp``) is decoded by
    :func:`unit_delta_xywh`, the same arithmetic without mmdet's per-call
    host copies of its means and stds (two host syncs per decode on a GPU);
    other coders by their own ``decode``.
    """
    if type(bbox_coder).__name__ == 'DeltaXYWHBBoxCoder' and not getattr(
            bbox_coder, 'add_ctr_clamp', False):
        # decode's own default wh_ratio_clip, as the heads call it
        return tuple(unit_delta_xywh(d, bbox_coder.means, bbox_coder.stds)
                     for d in (pred, target))
    # filled on the device: new_tensor([0, 0, 1, 1]) would copy a host
    # list, a blocking copy (a sync) on a GPU
    unit = pred.new_zeros(1, 4)
    unit[:, 2:] = 1.
    unit = unit.expand(pred.size(0), 4)
    boxes = (bbox_coder.decode(unit, pred), bbox_coder.decode(unit, target))
    return tuple(getattr(b, 'tensor', b) for b in boxes)


def _filled(like: Tensor, values) -> Tensor:
    """A (1, len(values)) tensor of ``like``'s dtype and device, filled on
    the device one value at a time (no host-to-device copy, no sync)."""
    out = like.new_empty(1, len(values))
    for i, value in enumerate(values):
        out[:, i] = float(value)
    return out


def unit_delta_xywh(deltas: Tensor, means, stds,
                    wh_ratio_clip: float = 16 / 1000) -> Tensor:
    """mmdet's ``delta2bbox`` (``DeltaXYWHBBoxCoder.decode``) of (N, 4)
    ``deltas`` on the unit anchor ``(0, 0, 1, 1)``, no border clip, without
    host copies: d = deltas * stds + means; centre 0.5 + (dx, dy); size
    exp(dw, dh clamped to +-|log(wh_ratio_clip)|). Returns (N, 4)
    ``(x1, y1, x2, y2)``; tested equal to mmdet's decode."""
    if deltas.size(0) == 0:
        return deltas
    denorm = deltas * _filled(deltas, stds) + _filled(deltas, means)
    max_ratio = abs(math.log(wh_ratio_clip))
    gxy = 0.5 + denorm[:, :2]
    gwh = denorm[:, 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    return torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)


def distribution_boxes(pred: Tensor, target: Tensor):
    """Boxes of DFL's side distributions (GFL's ``loss_dfl`` inputs).

    Args:
        pred (Tensor): (4P, n + 1) logits over the distances 0..n of the
            sides (left, top, right, bottom) of P boxes, in this order.
        target (Tensor): (4P,) target distances in [0, n].

    Returns:
        tuple[Tensor, Tensor]: (P, 4) boxes ``(-l, -t, r, b)`` around the
        anchor point, from the distributions' expected distances (as GFL's
        ``Integral`` decodes them) and from the targets. Both are in units of
        the level's stride, which an IoU does not depend on.
    """
    bins = torch.arange(pred.size(1), dtype=pred.dtype, device=pred.device)
    dist = (pred.softmax(dim=1) * bins).sum(dim=1).reshape(-1, 4)
    target = target.to(pred.dtype).reshape(-1, 4)
    sign = _filled(pred, (-1., -1., 1., 1.))  # on the device: no sync
    return dist * sign, target * sign


def box_iou(pred: Tensor, target: Tensor,
            weight: Optional[Tensor] = None) -> Scores:
    """IoU of aligned (N, 4) ``(x1, y1, x2, y2)`` boxes; ``weight`` (N,) or
    (N, 4): the positives are the rows with a positive weight (all rows if
    None). Degenerate boxes give IoU 0."""
    pred, target = pred.float(), target.float()
    iou = aligned_iou(pred, target).clamp(0, 1)
    return Scores(iou, sample_mask(weight, pred.size(0), pred.device))


def aligned_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of aligned (N, 4) boxes, as mmdet's ``bbox_overlaps(a, b,
    is_aligned=True)`` (union clamped below at ``eps``) without its host
    copy of ``eps`` (a sync per call on a GPU); tested equal to it."""
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    overlap = (rb - lt).clamp(min=0).prod(dim=-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return overlap / (area_a + area_b - overlap).clamp(min=eps)


def mask_iou(pred: Tensor, target: Tensor, labels: Tensor) -> Scores:
    """IoU of predicted and target instance masks (Mask R-CNN's
    ``loss_mask`` inputs).

    Args:
        pred (Tensor): (N, C, H, W) mask logits, one channel per class
            (C = 1: class-agnostic).
        target (Tensor): (N, H, W) target masks in [0, 1].
        labels (Tensor): (N,) the class of each instance (its channel);
            every instance counts, class 0 included.

    Returns:
        Scores: IoU of ``logit > 0`` and ``target >= 0.5``; 1.0 when both
        masks are empty (they agree everywhere).
    """
    num = pred.size(0)
    channel = labels.long() if pred.size(1) > 1 else torch.zeros_like(
        labels, dtype=torch.long)
    logits = pred[torch.arange(num, device=pred.device), channel]
    mask_p = logits.reshape(num, -1) > 0
    mask_t = target.reshape(num, -1) >= 0.5
    inter = (mask_p & mask_t).sum(dim=1)
    union = (mask_p | mask_t).sum(dim=1)
    iou = torch.where(union > 0, inter / union.clamp(min=1), 1.0)
    return Scores(iou.to(pred.dtype),
                  torch.ones(num, dtype=torch.bool, device=pred.device))


def quality_score(pred: Tensor, target: Tensor,
                  weight: Optional[Tensor] = None) -> Scores:
    """``1 - |sigmoid(pred) - target|`` per sample of a quality branch.

    Args:
        pred (Tensor): (N,) or (N, 1) logits (centerness, IoU prediction).
        target (Tensor): (N,) targets in [0, 1].
        weight (Tensor, optional): (N,); samples with no positive weight are
            not counted. Default: all.
    """
    pred = pred.reshape(-1).float()
    target = target.reshape(-1).to(pred.dtype)
    value = 1 - (pred.sigmoid() - target).abs()
    return Scores(value.clamp(0, 1),
                  sample_mask(weight, pred.numel(), pred.device))


def _neck_output(name: str, neck: nn.Module) -> str:
    """The output layer of a neck: FPN's ``fpn_convs``, a PAFPN's
    ``out_convs``, the last neck of a chain (Libra R-CNN's FPN + BFP)."""
    if isinstance(neck, nn.Sequential) and len(neck):
        return _neck_output(f'{name}.{len(neck) - 1}', neck[-1])
    for attr in ('fpn_convs', 'out_convs'):
        if isinstance(getattr(neck, attr, None), nn.Module):
            return f'{name}.{attr}'
    return name


def find_shared_layer(model: nn.Module, heads: Iterable[nn.Module]) -> str:
    """The name of the last layer shared by the balanced losses.

    Args:
        model (nn.Module): the detector (its ``neck``, if any, is used).
        heads (Iterable[nn.Module]): the modules that own the balanced loss
            modules.

    Returns:
        str: one head's shared layer when every loss is in it -- the RPN's
        ``rpn_conv``, the last ``shared_fcs`` / ``shared_convs`` layer of an
        RoI box head -- else (branches that split at the head's input,
        losses of several heads) the neck's output layer.

    Raises:
        ValueError: when neither exists (set ``shared_layer``).
    """
    heads = {id(h): h for h in heads}
    names = {id(m): n for n, m in model.named_modules()}
    if len(heads) == 1 and next(iter(heads)) in names:
        head = next(iter(heads.values()))
        prefix = names[id(head)] + '.' if names[id(head)] else ''
        if isinstance(getattr(head, 'rpn_conv', None), nn.Module):
            return f'{prefix}rpn_conv'
        for attr in ('shared_fcs', 'shared_convs'):
            layers = getattr(head, attr, None)
            if isinstance(layers, nn.ModuleList) and len(layers):
                return f'{prefix}{attr}.{len(layers) - 1}'
    neck = getattr(model, 'neck', None)
    if isinstance(neck, nn.Module):
        return _neck_output('neck', neck)
    raise ValueError(
        f'cannot find a layer shared by the balanced losses of '
        f'{type(model).__name__} (no shared head layer, no neck); set '
        f'shared_layer')
