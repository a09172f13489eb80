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


def paper_loop(losses):
    """Chen et al.'s RPN Guided Loss transcribed: at each iteration the
    objectness loss is multiplied by the detached ratio L_reg / L_cls of the
    same iteration; returns the factor of each iteration."""
    factors = []
    for cls, reg in losses:
        ratio = reg / cls              # .detach() in the authors' code
        total = ratio * cls + reg      # the loss back-propagated
        assert total == pytest.approx(2 * reg)
        factors.append(ratio)
    return factors


@pytest.mark.parametrize('mode', ['rpn', 'one_stage'])
def test_same_iteration_matches_the_paper(mode):
    rng = np.random.default_rng(3)
    losses = rng.uniform(0.1, 2.0, size=(8, 2))
    rule = GuidedLoss(mode=mode, warmup=20)
    assert rule.same_iteration
    got = []
    for cls, reg in losses:
        rule.prepare(dict(cls=cls, reg=reg))   # the glue, before backward
        got.append(rule.weights['cls'])
        rule.step(dict(cls=cls, reg=reg))
    assert got == pytest.approx(paper_loop(losses), rel=1e-15)


def test_lagged_form_uses_previous_ratio():
    losses = [(2.0, 1.0), (1.0, 3.0), (4.0, 1.0)]
    rule = GuidedLoss(lagged=True)
    assert not rule.same_iteration
    got = []
    for cls, reg in losses:
        got.append(rule.weights['cls'])
        rule.step(dict(cls=cls, reg=reg))
    assert got == [1.0, 0.5, 3.0]


def test_prepare_guards_and_frozen():
    rule = GuidedLoss(mode='one_stage', warmup=1)
    rule.prepare(dict(cls=2.0, reg=1.0))
    assert rule.weights['cls'] == 0.5
    for bad in [dict(cls=0.0, reg=1.0), dict(cls=math.nan, reg=1.0)]:
        rule.prepare(bad)  # keeps the last usable ratio
        assert rule.weights['cls'] == 0.5
    rule.step(dict(cls=2.0, reg=1.0))
    assert rule.frozen
    rule.prepare(dict(cls=1.0, reg=5.0))
    assert rule.weights['cls'] == 0.5
    with pytest.raises(ValueError, match='raw_losses'):
        rule.prepare(dict(cls=1.0))


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
                                dict(eps=0), dict(lagged=1)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        GuidedLoss(**kw)
