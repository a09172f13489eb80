"""IMTL-L (Liu et al., ICLR'21): weights e^{s_k}; the weighted losses plus
the regularizer are TorchJD's IMTLL, whose gradients (in the network and in
s) autograd gives directly; one SGD step of s worked by hand."""
import math

import pytest
import torch
from torchjd.scalarization import IMTLL

from _two_heads import grads, losses_of, two_heads
from mmdet_alwa.weighting import IMTL_L, build_rule


def test_weights_and_one_sgd_step_by_hand():
    rule = IMTL_L(init_log_scale=math.log(2.0))
    assert rule.weights == pytest.approx(dict(cls=2.0, reg=2.0))
    losses = dict(cls=torch.tensor(0.25), reg=torch.tensor(2.0))
    total = sum(rule.weight_loss(t, v) for t, v in losses.items()) + \
        rule.regularizer()
    # S = 2 * 0.25 - log 2 + 2 * 2 - log 2
    assert float(total.detach()) == pytest.approx(4.5 - 2 * math.log(2),
                                                  rel=1e-6)
    opt = torch.optim.SGD(rule.parameters(), lr=0.1)
    total.backward()
    opt.step()
    rule.step(dict(cls=0.25, reg=2.0))
    # dS/ds_k = e^{s_k} L_k - 1 = (-0.5, 3): s - 0.1 * (-0.5, 3)
    expected = [math.log(2) + 0.05, math.log(2) - 0.3]
    assert rule.state_dict()['log_vars'] == pytest.approx(expected, rel=1e-6)
    assert rule.log_scalars()['log_scale_cls'] == pytest.approx(expected[0],
                                                                rel=1e-6)


def test_gradient_equals_torchjd_imtll():
    rule = IMTL_L()
    with torch.no_grad():
        rule.log_vars.copy_(torch.tensor([0.3, -0.7]))
    direct = IMTLL(2)
    with torch.no_grad():
        direct.log_scale.copy_(torch.tensor([0.3, -0.7]))
    model = two_heads()
    losses = losses_of(model)
    ours = sum(rule.weight_loss(t, losses[t]) for t in rule.tasks) + \
        rule.regularizer()
    theirs = direct(torch.stack([losses[t] for t in rule.tasks]).float())
    torch.testing.assert_close(ours.float(), theirs)
    for a, b in zip(grads(model, ours), grads(model, theirs)):
        torch.testing.assert_close(a.float(), b, rtol=1e-5, atol=1e-7)
    g_ours, = torch.autograd.grad(ours, rule.log_vars)
    g_theirs, = torch.autograd.grad(theirs, direct.log_scale)
    torch.testing.assert_close(g_ours.float(), g_theirs)


def test_nonfinite_scale_is_restored_and_state_round_trips():
    rule = IMTL_L()
    rule.step(dict(cls=1.0, reg=1.0))
    with torch.no_grad():
        rule.log_vars.fill_(math.nan)  # an optimizer step with a NaN loss
    rule.step(dict(cls=math.nan, reg=1.0))
    assert rule.weights == dict(cls=1.0, reg=1.0)
    assert rule.num_restored == 1
    resumed = build_rule(dict(type='IMTL_L'))
    resumed.load_state_dict(rule.state_dict())
    assert resumed.state_dict() == rule.state_dict()


@pytest.mark.parametrize('kw', [dict(init_log_scale=21), dict(tasks='cls')])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        IMTL_L(**kw)
