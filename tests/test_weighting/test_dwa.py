import math

import numpy as np
import pytest

from mmdet_alwa.weighting import build_rule
from mmdet_alwa.weighting.dwa import DWA


def reference_dwa(window_means, T=2.0):
    """Liu et al.'s MTAN loop: weights of each window from the two before."""
    K = window_means.shape[1]
    out = []
    for index in range(len(window_means) + 1):
        if index < 2:
            out.append(np.ones(K))
        else:
            w = window_means[index - 1] / window_means[index - 2]
            out.append(K * np.exp(w / T) / np.exp(w / T).sum())
    return out


def run(rule, stream):
    seen = [rule.weights]
    for losses in stream:
        rule.step(losses)
        seen.append(rule.weights)
    return seen


def test_matches_paper_on_fixed_stream():
    rng = np.random.default_rng(0)
    tasks, interval, windows = ('cls', 'reg', 'aux'), 5, 6
    losses = rng.uniform(0.1, 2.0, size=(interval * windows, 3))
    rule = DWA(tasks, interval=interval)
    seen = run(rule, [dict(zip(tasks, row)) for row in losses])
    means = losses.reshape(windows, interval, 3).mean(1)
    ref = reference_dwa(means)
    for it, w in enumerate(seen):
        # weights are constant inside a window and change after it closes
        expected = ref[it // interval]
        np.testing.assert_allclose([w[t] for t in tasks], expected, rtol=1e-12)
    assert rule.num_windows == windows


@pytest.mark.parametrize('scale', [1e-300, 1e-30, 1e30, 1e300])
def test_many_orders_of_magnitude_cannot_overflow(scale):
    # the ALWA paper's "overflow" row: r = L(k-1)/L(k-2) huge
    rule = DWA(interval=1)
    for losses in [dict(cls=1.0, reg=1.0), dict(cls=scale, reg=1.0),
                   dict(cls=scale * scale, reg=1.0), dict(cls=0.0, reg=1e6),
                   dict(cls=1e6, reg=0.0)]:
        rule.step(losses)
        w = rule.weights
        assert all(math.isfinite(v) and 0 <= v <= 2 for v in w.values())
        assert sum(w.values()) == pytest.approx(2.0)


def test_jump_by_1e6_and_nonfinite():
    rule = DWA(interval=2)
    stream = [dict(cls=1.0, reg=1.0)] * 4 + [dict(cls=1e6, reg=1.0)] * 2
    run(rule, stream)
    assert rule.weights['cls'] == pytest.approx(2.0)  # cls takes all weight
    assert rule.weights['reg'] >= 0
    # a window whose cls losses are all NaN: cls gets r=1, no NaN weight
    run(rule, [dict(cls=math.nan, reg=1.0), dict(cls=math.inf, reg=1.0)])
    assert rule.num_nonfinite['cls'] == 2
    assert all(math.isfinite(v) for v in rule.weights.values())
    r_reg = 1.0  # reg window means 1 -> 1
    e = np.exp(np.array([1.0, r_reg]) / 2)
    np.testing.assert_allclose(list(rule.weights.values()), 2 * e / e.sum())


def test_zero_losses_equal_weights():
    rule = DWA(interval=1)
    run(rule, [dict(cls=0.0, reg=0.0)] * 4)
    assert rule.weights == pytest.approx(dict(cls=1.0, reg=1.0))


def test_state_dict_round_trip():
    rng = np.random.default_rng(1)
    stream = [dict(cls=a, reg=b) for a, b in rng.uniform(0.1, 1, (23, 2))]
    full = DWA(interval=4)
    run(full, stream)
    part = DWA(interval=4)
    run(part, stream[:13])
    resumed = DWA(interval=4)
    resumed.load_state_dict(part.state_dict())
    run(resumed, stream[13:])
    assert resumed.state_dict() == full.state_dict()


@pytest.mark.parametrize('kw', [dict(interval=0), dict(interval=1.5),
                                dict(temperature=0), dict(eps=-1),
                                dict(tasks='cls'), dict(log_ratio_max=0)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        DWA(**kw)


def test_build_and_bad_state():
    rule = build_rule(dict(type='DWA', interval=3))
    assert isinstance(rule, DWA)
    with pytest.raises(ValueError):
        rule.step(dict(cls=1.0))
    with pytest.raises(ValueError):
        DWA(tasks=('a', 'b')).load_state_dict(rule.state_dict())
