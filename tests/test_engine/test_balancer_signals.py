"""The balancers' signal providers on a real mmdet head's loss modules."""
import math

import pytest
import torch
from torch import nn

from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps
from mmdet_alwa.engine.hooks.signals import build_signal_provider


class Head(nn.Module):
    def __init__(self, use_sigmoid):
        super().__init__()
        self.shared = nn.Linear(3, 3)
        self.loss_cls = MODELS.build(dict(type='CrossEntropyLoss',
                                          use_sigmoid=use_sigmoid))
        self.loss_bbox = MODELS.build(dict(type='L1Loss'))
        self.bbox_coder = TASK_UTILS.build(dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
            target_stds=[0.1, 0.1, 0.2, 0.2]))
        self.reg_decoded_bbox = False


class Detector(nn.Module):
    def __init__(self, use_sigmoid=True):
        super().__init__()
        self.neck = nn.Linear(3, 3)
        self.head = Head(use_sigmoid)


def _attach(name, det, **kw):
    p = build_signal_provider(dict(type=name, **kw))
    p.attach(det, dict(cls=[det.head.loss_cls], reg=[det.head.loss_bbox]))
    p.reset()
    return p


def test_kpi_regression_iou_is_exact_with_unit_anchors():
    torch.manual_seed(0)
    det = Detector()
    p = _attach('kpi', det)
    anchors = torch.rand(6, 2) * 50
    anchors = torch.cat([anchors, anchors + 5 + torch.rand(6, 2) * 40], 1)
    pred, target = torch.randn(6, 4) * 0.5, torch.randn(6, 4) * 0.5
    weight = torch.zeros(6, 4)
    weight[:4] = 1  # four positives
    det.head.loss_bbox(pred, target, weight)
    coder = det.head.bbox_coder
    iou = bbox_overlaps(coder.decode(anchors, pred),
                        coder.decode(anchors, target), is_aligned=True)
    assert p.collect()['reg'] == pytest.approx(iou[:4].mean().item(),
                                               rel=1e-5)
    assert math.isnan(p.collect()['cls'])  # no classification call yet


@pytest.mark.parametrize('use_sigmoid', [True, False])
def test_kpi_classification_accuracy(use_sigmoid):
    det = Detector(use_sigmoid)
    p = _attach('kpi', det)
    if use_sigmoid:  # 1 foreground class: label 0 = fg, 1 = bg
        score = torch.tensor([[2.], [-1.], [3.], [-2.], [5.]])
    else:            # softmax over (fg, bg)
        score = torch.tensor([[2., 0.], [0., 1.], [3., 0.], [0., 2.],
                              [5., 0.]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    weights = torch.tensor([1., 1., 1., 1., 0.])  # last one not sampled
    det.head.loss_cls(score, labels, weights)
    det.head.loss_cls(score[:1], labels[:1], weights[:1])  # a second level
    # correct: samples 0, 3 and the second call's sample: 3 of 5
    assert p.collect()['cls'] == pytest.approx(3 / 5)
    balanced = _attach('kpi', det, cls_metric='balanced')
    det.head.loss_cls(score, labels, weights)
    # fg: 1 of 2, bg: 1 of 2
    assert balanced.collect()['cls'] == pytest.approx(0.5)
    counts = _attach('num_samples', det)
    det.head.loss_cls(score, labels, weights)
    det.head.loss_bbox(torch.zeros(3, 4), torch.zeros(3, 4),
                       torch.tensor([[1.] * 4, [0.] * 4, [1.] * 4]))
    assert counts.collect() == dict(cls=4.0, reg=2.0)


def test_grad_norm_of_each_task_on_the_shared_layer():
    torch.manual_seed(0)
    det = Detector()
    p = _attach('grad_norm', det, shared_layer='head.shared')
    x = torch.randn(4, 3)
    feat = det.head.shared(det.neck(x))
    raw = dict(cls=feat[:, 0].pow(2).sum(), reg=feat[:, 1:].abs().sum())
    p.on_losses(raw, rule=None)
    for task, loss in raw.items():
        grads = torch.autograd.grad(loss, list(det.head.shared.parameters()),
                                    retain_graph=True)
        ref = torch.cat([g.flatten() for g in grads]).norm().item()
        assert p.collect()[task] == pytest.approx(ref, rel=1e-6)
    # default without a known shared head layer: the neck
    assert _attach('grad_norm', det).layer_names == ['neck']


def test_bad_provider_args():
    det = Detector()
    with pytest.raises(ValueError, match='shared_layer'):
        _attach('grad_norm', det, shared_layer='nope')
    with pytest.raises(ValueError, match='shared_layer'):
        build_signal_provider(dict(type='grad_norm', shared_layer=[]))
    with pytest.raises(ValueError, match='cls_metric'):
        build_signal_provider(dict(type='kpi', cls_metric='f1'))
    with pytest.raises(ValueError, match='kinds'):
        build_signal_provider(dict(type='kpi', kinds=dict(cls='boxes')))
