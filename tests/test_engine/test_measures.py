"""The pure task measures (DTP's KPIs) on hand-made inputs whose answers are
worked out by hand in the comments."""
import math

import pytest
import torch
from torch import nn

from mmdet.registry import TASK_UTILS
from mmdet_alwa.engine.hooks.signals.measures import (
    aligned_iou, box_iou, cls_accuracy, decode_deltas, distribution_boxes,
    find_shared_layer, mask_iou, quality_score, sample_mask, unit_delta_xywh)


def _mean(scores):
    return (scores.value * scores.valid).sum().item() / scores.valid.sum()


def test_predicted_label_sigmoid_and_softmax():
    # sigmoid, 2 classes: background (2) unless a logit is positive;
    # predicted 0, bg, 1, bg, bg
    sig = torch.tensor([[2., -1.], [-1., -3.], [0.5, 3.], [0., -2.],
                        [0., 0.]])
    hits = [[1., 0., 0., 0., 0.], [0., 0., 1., 0., 0.], [0., 1., 0., 1., 1.]]
    for label in range(3):
        scores = cls_accuracy(sig, torch.full((5, ), label), use_sigmoid=True)
        assert scores.value.tolist() == hits[label]
    # softmax over (c0, c1, bg): arg-max, a tie for the top counts for
    # either label (last row); predicted 0, bg, 1, 0 or 1
    soft = torch.tensor([[3., 0., 0.], [0., 0., 1.], [0., 2., 1.],
                         [1., 1., 0.]])
    hits = [[1., 0., 0., 1.], [0., 0., 1., 1.], [0., 1., 0., 0.]]
    for label in range(3):
        scores = cls_accuracy(soft, torch.full((4, ), label),
                              use_sigmoid=False)
        assert scores.value.tolist() == hits[label]


@pytest.mark.parametrize('soft_target', [False, True])
def test_cls_accuracy_sigmoid(soft_target):
    pred = torch.tensor([[2., -1.], [-1., -3.], [0.5, 3.], [-2., -2.]])
    labels = torch.tensor([0, 2, 0, 2])  # bg = 2
    # predicted 0, bg, 1, bg: correct, correct, wrong, correct
    target = (labels, torch.tensor([0.8, 0., 0.3, 0.])) if soft_target \
        else labels
    weight = torch.tensor([1., 1., 1., 0.])  # the last is not sampled
    scores = cls_accuracy(pred, target, weight, use_sigmoid=True)
    assert scores.value.tolist() == [1., 1., 0., 1.]
    assert scores.valid.tolist() == [True, True, True, False]
    assert _mean(scores) == pytest.approx(2 / 3)
    # no weight (FCOS): all four count -> 3 of 4
    assert _mean(cls_accuracy(pred, target, None)) == pytest.approx(3 / 4)


def test_cls_accuracy_any_layout():
    # the row max is a max-pool over contiguous rows: a transposed
    # (non-contiguous) input, one class, no rows all give the same answer;
    # softmax over (c0, c1, bg), labels 0, bg, bg: correct, correct, wrong
    # (the last row predicts c1)
    soft = torch.tensor([[3., 0., 0.], [0., 0., 1.], [0., 2., 1.]])
    labels = torch.tensor([0, 2, 2])
    for pred in (soft, soft.t().contiguous().t()):
        assert cls_accuracy(pred, labels, use_sigmoid=False).value.tolist() \
            == [1., 1., 0.]
    one = torch.tensor([[1.], [-1.], [0.5]])  # sigmoid, 1 class: bg = 1
    assert cls_accuracy(one, torch.tensor([0, 1, 1])).value.tolist() == [
        1., 1., 0.]
    empty = cls_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert empty.value.shape == (0, ) and empty.valid.shape == (0, )


def test_cls_accuracy_softmax_ignores_invalid_labels():
    pred = torch.tensor([[3., 0., 0.], [0., 0., 1.], [0., 2., 1.],
                         [5., 0., 0.]])
    labels = torch.tensor([0, 2, 0, -100])  # -100: mmdet's ignore_index
    scores = cls_accuracy(pred, labels, use_sigmoid=False)
    assert scores.valid.tolist() == [True, True, True, False]
    assert _mean(scores) == pytest.approx(2 / 3)  # rows 0 and 1 correct
    # (N, C) per-class weights: a row counts if any weight is positive
    weight = torch.tensor([[0., 1., 0.], [0., 0., 0.], [1., 1., 1.],
                           [1., 0., 0.]])
    assert cls_accuracy(pred, labels, weight, False).valid.tolist() == [
        True, False, True, False]


def test_box_iou():
    pred = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.],
                         [1., 1., 1., 1.]])
    target = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 4.],
                           [0., 0., 2., 2.]])
    # overlap 1 of union 4 + 4 - 1; 4 of 8; a degenerate box: 0
    scores = box_iou(pred, target, torch.tensor([[1.] * 4, [1.] * 4,
                                                 [0.] * 4]))
    assert scores.value.tolist() == pytest.approx([1 / 7, 0.5, 0.])
    assert scores.valid.tolist() == [True, True, False]
    assert box_iou(pred, target).valid.all()
    empty = box_iou(torch.zeros(0, 4), torch.zeros(0, 4))
    assert empty.value.shape == (0, ) and empty.valid.shape == (0, )


def test_decoded_deltas_give_the_iou_of_the_real_boxes():
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder',
                                  target_means=[0.] * 4,
                                  target_stds=[0.1, 0.1, 0.2, 0.2]))
    # the prediction is the anchor itself; the target is twice as wide:
    # anchor (10, 20, 30, 60) -> target (0, 20, 40, 60): IoU 800 / 1600
    pred = torch.zeros(1, 4)
    target = torch.tensor([[0., 0., math.log(2) / 0.2, 0.]])
    boxes = decode_deltas(coder, pred, target)
    assert box_iou(*boxes).value.item() == pytest.approx(0.5)
    real = [coder.decode(torch.tensor([[10., 20., 30., 60.]]), d)
            for d in (pred, target)]
    assert real[1][0].tolist() == pytest.approx([0., 20., 40., 60.])
    assert box_iou(*real).value.item() == pytest.approx(0.5)


def _peaked(sides, bins=5):
    """DFL logits putting (almost) all mass on the given bins."""
    logits = torch.full((len(sides), bins), -50.)
    for row, side in enumerate(sides):
        for b in ([side] if isinstance(side, int) else side):
            logits[row, b] = 50.
    return logits


def test_distribution_boxes_and_their_iou():
    # sides (l, t, r, b) = (1, 1, 1, 1): box (-1, -1, 1, 1); target
    # (1, 1, 3, 1): box (-1, -1, 3, 1); IoU 4 / 8
    pred = _peaked([1, 1, 1, 1])
    target = torch.tensor([1., 1., 3., 1.])
    p, t = distribution_boxes(pred, target)
    assert p[0].tolist() == pytest.approx([-1., -1., 1., 1.])
    assert t.tolist() == [[-1., -1., 3., 1.]]
    assert box_iou(p, t).value.item() == pytest.approx(0.5)
    # equal mass on bins 1 and 2: expected distance 1.5 on every side
    p, t = distribution_boxes(_peaked([(1, 2)] * 4), torch.full((4, ), 1.5))
    assert p[0].tolist() == pytest.approx([-1.5, -1.5, 1.5, 1.5])
    assert box_iou(p, t).value.item() == pytest.approx(1.0)


def test_mask_iou_per_class_channel():
    pred = torch.full((3, 2, 2, 2), -1.)
    pred[0, 0] = torch.tensor([[1., -1.], [1., -1.]])  # left column
    pred[0, 1] = 1.  # another class's channel: not read
    pred[1, 1] = 1.  # everything
    target = torch.tensor([[[1., 1.], [0., 0.]],  # top row
                           [[1., 1.], [1., 1.]],
                           [[0., 0.], [0., 0.]]])
    labels = torch.tensor([0, 1, 0])  # class 0 counts like any other
    scores = mask_iou(pred, target, labels)
    # inst 0: 1 shared pixel of 3; inst 1: 4 of 4; inst 2: both empty
    assert scores.value.tolist() == pytest.approx([1 / 3, 1., 1.])
    assert scores.valid.all()
    # class-agnostic (one channel): channel 0 whatever the label
    agnostic = mask_iou(pred[:, :1], target, torch.tensor([5, 7, 1]))
    assert agnostic.value[0].item() == pytest.approx(1 / 3)


def test_quality_score():
    pred = torch.tensor([0., math.log(3.), 0.])  # sigmoid 0.5, 0.75, 0.5
    target = torch.tensor([0.5, 0.25, 1.0])
    scores = quality_score(pred, target, torch.tensor([1., 1., 0.]))
    assert scores.value.tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert scores.valid.tolist() == [True, True, False]


def test_sample_mask():
    assert sample_mask(None, 3, torch.device('cpu')).tolist() == [True] * 3
    assert sample_mask(torch.tensor([0., 2., -1.]), 3,
                       torch.device('cpu')).tolist() == [False, True, False]
    assert sample_mask(torch.zeros(0), 0, torch.device('cpu')).numel() == 0
    # (N, K) weights: a row counts when any of its K is positive, for every
    # K (2, 4, 8 read a row as one integer) and any position in the row
    cpu = torch.device('cpu')
    for k in (2, 3, 4, 5, 8):
        weight = torch.zeros(k + 2, k)
        weight[torch.arange(k), torch.arange(k)] = 1.0  # row i: column i
        weight[k, :] = -1.0                             # negative: no
        got = sample_mask(weight, k + 2, cpu).tolist()
        assert got == [True] * k + [False, False], k
        assert sample_mask(torch.zeros(0, k), 0, cpu).numel() == 0


class _Det(nn.Module):
    def __init__(self, neck):
        super().__init__()
        if neck is not None:
            self.neck = neck
        self.rpn_head = nn.Module()
        self.rpn_head.rpn_conv = nn.Conv2d(1, 1, 1)
        self.rpn_head.loss_cls = nn.Identity()
        self.roi_head = nn.Module()
        self.roi_head.bbox_head = nn.Module()
        self.roi_head.bbox_head.shared_fcs = nn.ModuleList(
            [nn.Linear(1, 1), nn.Linear(1, 1)])
        self.roi_head.bbox_head.loss_cls = nn.Identity()


def _fpn():
    fpn = nn.Module()
    fpn.fpn_convs = nn.ModuleList([nn.Conv2d(1, 1, 1)])
    return fpn


def test_find_shared_layer():
    det = _Det(_fpn())
    assert find_shared_layer(det, [det.rpn_head]) == 'rpn_head.rpn_conv'
    assert find_shared_layer(det, [det.roi_head.bbox_head]) == \
        'roi_head.bbox_head.shared_fcs.1'
    # losses of two heads: the neck's output convs
    assert find_shared_layer(det, [det.rpn_head, det.roi_head.bbox_head]) \
        == 'neck.fpn_convs'
    # a chain of necks (Libra R-CNN: FPN then BFP): the last one's output
    chain = _Det(nn.Sequential(_fpn(), nn.Conv2d(1, 1, 1)))
    assert find_shared_layer(chain, [chain.rpn_head, chain.roi_head]) == \
        'neck.1'
    pafpn = nn.Module()
    pafpn.out_convs = nn.ModuleList([nn.Conv2d(1, 1, 1)])
    assert find_shared_layer(_Det(pafpn), []) == 'neck.out_convs'
    with pytest.raises(ValueError, match='shared_layer'):
        find_shared_layer(_Det(None), [])


@pytest.mark.parametrize('means,stds', [((0., 0., 0., 0.), (1., 1., 1., 1.)),
                                        ((0., 0., 0., 0.), (.1, .1, .2, .2)),
                                        ((.5, -.2, .1, .3), (.3, .7, .2, .9))])
@pytest.mark.parametrize('n', [0, 1, 257])
def test_unit_delta_xywh_equals_mmdets_decode(means, stds, n):
    """Oracle: mmdet's own DeltaXYWHBBoxCoder.decode on the unit anchor
    (which makes host copies of its means/stds; ours fills them on the
    device), large deltas included so that the w/h clamp acts."""
    coder = TASK_UTILS.build(dict(type='DeltaXYWHBBoxCoder',
                                  target_means=list(means),
                                  target_stds=list(stds)))
    g = torch.Generator().manual_seed(n)
    deltas = torch.randn(n, 4, generator=g) * 20  # |dw| up to ~60: clamped
    unit = torch.tensor([[0., 0., 1., 1.]]).expand(n, 4)
    expected = coder.decode(unit, deltas)
    assert torch.equal(unit_delta_xywh(deltas, means, stds), expected)
    pred, target = decode_deltas(coder, deltas, deltas.flip(0))
    assert torch.equal(pred, expected)
    assert torch.equal(target, coder.decode(unit, deltas.flip(0)))


@pytest.mark.parametrize('n', [0, 1, 100])
def test_aligned_iou_equals_mmdets_bbox_overlaps(n):
    """Oracle: mmdet's bbox_overlaps(is_aligned=True); hand values: a box
    with itself 1, disjoint 0, half-overlapping (0,0,2,1) vs (1,0,3,1) 1/3,
    degenerate pairs 0 (union clamped at eps)."""
    from mmdet.structures.bbox import bbox_overlaps
    g = torch.Generator().manual_seed(n)
    xy = torch.rand(n, 2, generator=g) * 10
    a = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 5], 1)
    xy = xy + torch.randn(n, 2, generator=g)
    b = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 5], 1)
    assert torch.equal(aligned_iou(a, b), bbox_overlaps(a, b, is_aligned=True))
    hand = aligned_iou(
        torch.tensor([[0., 0., 2., 1.], [0., 0., 1., 1.], [0., 0., 2., 1.],
                      [1., 1., 1., 1.]]),
        torch.tensor([[0., 0., 2., 1.], [2., 2., 3., 3.], [1., 0., 3., 1.],
                      [1., 1., 1., 1.]]))
    assert hand.tolist() == pytest.approx([1., 0., 1 / 3, 0.])
