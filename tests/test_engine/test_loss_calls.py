"""``parse_loss_call`` / ``infer_kind`` on mmdet's real loss modules,
called the ways mmdet's heads call them (oracle: the arguments passed)."""
import torch
from mmdet.models.losses import (CrossEntropyLoss, FocalLoss,
                                 QualityFocalLoss, SmoothL1Loss)

from mmdet_alwa.engine.hooks.signals.loss_calls import (infer_kind,
                                                        parse_loss_call)


def test_weight_positional_keyword_and_absent():
    loss = SmoothL1Loss()
    pred, target, w = torch.rand(3, 4), torch.rand(3, 4), torch.ones(3, 4)
    for args, kwargs in [((pred, target, w), {}),          # anchor heads
                         ((pred, target), dict(weight=w, avg_factor=3.0)),
                         ((pred, target), dict(avg_factor=3.0))]:  # FCOS
        call = parse_loss_call(loss, args, kwargs)
        assert call.pred is pred and call.target is target
        assert call.weight is (w if len(args) == 3 or 'weight' in kwargs
                               else None)
        assert infer_kind(loss, call) == 'box'


def test_classification_and_qfl_targets():
    labels = torch.tensor([0, 2, 1])
    call = parse_loss_call(FocalLoss(), (torch.rand(3, 3), labels), {})
    assert call.target is labels and infer_kind(FocalLoss(), call) == 'cls'
    qfl = QualityFocalLoss()
    target = (labels, torch.rand(3))  # GFL/RTMDet: (labels, scores)
    call = parse_loss_call(qfl, (torch.rand(3, 3), target), {})
    assert call.target is target and infer_kind(qfl, call) == 'cls'


def test_mask_loss_third_argument_is_labels_not_weights():
    loss = CrossEntropyLoss(use_mask=True)
    labels = torch.tensor([0, 0, 3, 0, 1])  # five positives, class 0 among them
    call = parse_loss_call(
        loss, (torch.rand(5, 4, 7, 7), torch.rand(5, 7, 7), labels), {})
    assert call.weight is None and call.labels is labels
    assert infer_kind(loss, call) == 'mask'


def test_unreadable_call_gives_none():
    assert parse_loss_call(SmoothL1Loss(), (torch.rand(3, 4),), {}) is None
    assert parse_loss_call(SmoothL1Loss(), ('a', torch.rand(3, 4)), {}) \
        is None
