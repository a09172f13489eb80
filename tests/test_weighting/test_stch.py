"""STCH: w_k = lambda_k softmax_k(lambda (L - z*) / mu) (the derivative of
Lin et al.'s smooth Tchebycheff scalarization, ICML'24 Eq. 9), worked by
hand; the gradient equals that of TorchJD's STCH back-propagated
directly."""
import math

import pytest
import torch
from torchjd.scalarization import STCH as TorchJDSTCH

from _two_heads import weighted_vs_scalarized
from mmdet_alwa.weighting import STCH, build_rule


def test_hand_worked_weights():
    # lambda = (1/2, 1/2), mu = 1, L = (1, 3): softmax(0.5, 1.5)
    # = (1, e) / (1 + e); times 1/2
    e = math.e
    w = STCH(mu=1.0).prepare(dict(cls=1.0, reg=3.0))
    assert w == pytest.approx(dict(cls=0.5 / (1 + e), reg=0.5 * e / (1 + e)),
                              rel=1e-14)
    # preferences (0.2, 0.8), reference (1, 1), mu = 0.5, L = (2, 1.5):
    # y = (0.2, 0.4), y / mu = (0.4, 0.8): softmax = (1, e^0.4) / (1 + e^0.4)
    rule = STCH(mu=0.5, preferences=(0.2, 0.8), reference=(1.0, 1.0))
    s = math.exp(0.4)
    assert rule.prepare(dict(cls=2.0, reg=1.5)) == pytest.approx(
        dict(cls=0.2 / (1 + s), reg=0.8 * s / (1 + s)), rel=1e-14)
    # small mu: nearly all the weight on the largest loss
    w = STCH(mu=0.01).prepare(dict(cls=1.0, reg=3.0))
    assert w['reg'] == pytest.approx(0.5) and w['cls'] < 1e-40


def test_huge_losses_stay_finite():
    w = STCH(mu=0.01).prepare(dict(cls=1e300, reg=1.0))
    assert w == pytest.approx(dict(cls=0.5, reg=0.0))


def test_gradient_equals_torchjd_stch():
    ours, direct = weighted_vs_scalarized(STCH(mu=0.3), TorchJDSTCH(0.3))
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_fallback_and_state():
    rule = STCH(mu=1.0)
    rule.prepare(dict(cls=1.0, reg=3.0))
    rule.step(dict(cls=1.0, reg=3.0))
    last = rule.weights
    assert rule.prepare(dict(cls=math.nan, reg=3.0)) == last
    rule.step(dict(cls=math.nan, reg=3.0))
    assert rule.num_fallbacks == 1 and rule.num_nonfinite['cls'] == 1
    resumed = build_rule(dict(type='STCH', mu=1.0))
    resumed.load_state_dict(rule.state_dict())
    assert resumed.state_dict() == rule.state_dict()
    assert resumed.weights == last


@pytest.mark.parametrize('kw', [dict(mu=0), dict(preferences=(1.0, )),
                                dict(preferences=(1.0, -1.0)),
                                dict(reference=(0.0, 0.0, 0.0))])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        STCH(**kw)
