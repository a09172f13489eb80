"""Sample-level balancing (paper 004 Eq. 9) for softmax and sigmoid heads."""
import pytest
import torch
import torch.nn.functional as F

from mmdet.registry import MODELS


def test_softmax_form_is_eq_9():
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 4), torch.randint(0, 4, (7, ))
    weight = torch.tensor([1., 1., 0., 1., 1., 1., 1.])
    loss = MODELS.build(dict(type='SampleLevelBalancedLoss', beta=1.5))
    p = logits.softmax(1)[torch.arange(7), labels]
    eq9 = -(1 - p)**1.5 * p.log()                       # Eq. 9 per sample
    got = loss(logits, labels, weight, avg_factor=6)
    assert got.item() == pytest.approx((eq9 * weight).sum().item() / 6,
                                       rel=1e-6)
    # beta = 0 is the cross-entropy
    ce = MODELS.build(dict(type='SampleLevelBalancedLoss', beta=0.0))
    assert ce(logits, labels).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6)
    # finite gradient even when p = 1 exactly
    sure = torch.tensor([[100., -100.]], requires_grad=True)
    MODELS.build(dict(type='SampleLevelBalancedLoss', beta=0.5))(
        sure, torch.tensor([0])).backward()
    assert torch.isfinite(sure.grad).all()


def test_sigmoid_form_is_focal_loss_without_alpha():
    torch.manual_seed(1)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 2, 3, 1, 3, 0])  # 3 = background
    focal = MODELS.build(dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                              alpha=0.5, loss_weight=2.0, reduction='sum'))
    y = F.one_hot(labels, 4)[:, :3].float()
    p = torch.where(y > 0, logits.sigmoid(), 1 - logits.sigmoid())
    eq9 = -(1 - p)**2.0 * p.log()
    assert focal(logits, labels).item() == pytest.approx(eq9.sum().item(),
                                                         rel=1e-5)


@pytest.mark.parametrize('kw', [dict(beta=-1), dict(reduction='avg'),
                                dict(loss_weight=0)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        MODELS.build(dict(type='SampleLevelBalancedLoss', **kw))
