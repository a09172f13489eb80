import math

import numpy as np
import pytest

from mmdet_alwa.weighting.guided import GuidedLoss


def test_rpn_form_follows_ratio():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0.1, 2.0, size=(10, 2))
    rule = GuidedLoss(mode='rpn')
    assert rule.weights == dict(cls=1.0, reg=1.0)
    for cls, reg in losses:
        rule.step(dict(cls=cls, reg=reg))
        # detached ratio of the last iteration multiplies cls, reg unweighted
        assert rule.weights == dict(cls=reg / cls, reg=1.0)


def test_one_stage_form_freezes_mean_of_warmup():
    rng = np.random.default_rng(1)
    losses = rng.uniform(0.1, 2.0, size=(12, 2))
    rule = GuidedLoss(mode='one_stage', warmup=5)
    for i, (cls, reg) in enumerate(losses):
        rule.step(dict(cls=cls, reg=reg))
        if i < 4:
            assert rule.weights['cls'] == pytest.approx(reg / cls)
    expected = np.mean(losses[:5, 1] / losses[:5, 0])
    assert rule.frozen
    assert rule.weights['cls'] == pytest.approx(expected, rel=1e-12)


def test_guards():
    rule = GuidedLoss(mode='one_stage', warmup=3)
    rule.step(dict(cls=2.0, reg=1.0))
    for bad in [dict(cls=0.0, reg=1.0), dict(cls=math.nan, reg=1.0),
                dict(cls=1.0, reg=math.inf)]:
        rule.step(bad)
        assert rule.weights['cls'] == 0.5 and rule.num_ratios == 1
    rule.step(dict(cls=1e-6, reg=1.0))  # a 1e6 jump of the ratio is finite
    assert rule.weights['cls'] == pytest.approx(1e6)
    rule.step(dict(cls=1.0, reg=1e300))
    assert rule.frozen and math.isfinite(rule.weights['cls'])


def test_state_dict_round_trip():
    rng = np.random.default_rng(2)
    stream = [dict(cls=a, reg=b) for a, b in rng.uniform(0.1, 1, (9, 2))]
    full, part = GuidedLoss(mode='one_stage', warmup=6), \
        GuidedLoss(mode='one_stage', warmup=6)
    for i, s in enumerate(stream):
        full.step(s)
        if i < 4:
            part.step(s)
    resumed = GuidedLoss(mode='one_stage', warmup=6)
    resumed.load_state_dict(part.state_dict())
    for s in stream[4:]:
        resumed.step(s)
    assert resumed.state_dict() == full.state_dict()


@pytest.mark.parametrize('kw', [dict(mode='two_stage'), dict(warmup=0),
                                dict(tasks=('cls', 'reg', 'x')),
                                dict(eps=0)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        GuidedLoss(**kw)
