import math

import numpy as np
import pytest

from mmdet_alwa.weighting.dtp import DTP


def reference_dtp(kpis, gamma, alpha):
    """Guo et al. Eq. 5-6: EMA of the KPI, then the focal term."""
    kbar, out = None, []
    for k in kpis:
        kbar = k if kbar is None else alpha * k + (1 - alpha) * kbar
        out.append(-(1 - kbar)**gamma * np.log(kbar))
    return np.array(out)


def test_matches_paper_on_fixed_stream():
    rng = np.random.default_rng(0)
    kpi = rng.uniform(0.05, 0.95, size=(40, 2))
    gamma = dict(cls=2.0, reg=0.5)
    rule = DTP(gamma=gamma, alpha=0.3)
    assert rule.weights == dict(cls=1.0, reg=1.0)
    got = []
    for row in kpi:
        rule.step(dict(cls=1.0, reg=1.0), kpi=dict(cls=row[0], reg=row[1]))
        got.append([rule.weights['cls'], rule.weights['reg']])
    got = np.array(got)
    np.testing.assert_allclose(got[:, 0], reference_dtp(kpi[:, 0], 2.0, 0.3))
    np.testing.assert_allclose(got[:, 1], reference_dtp(kpi[:, 1], 0.5, 0.3))
    # the harder task (lower KPI) gets the larger weight
    rule2 = DTP()
    rule2.step(dict(cls=1, reg=1), kpi=dict(cls=0.9, reg=0.3))
    assert rule2.weights['reg'] > rule2.weights['cls']


def test_clamped_and_finite():
    rule = DTP(eps=1e-3)
    rule.step(dict(cls=math.nan, reg=0.0), kpi=dict(cls=0.0, reg=1.0))
    w = rule.weights
    assert w['cls'] == pytest.approx(-(1 - 1e-3) * math.log(1e-3))
    assert 0 < w['reg'] < 1e-5
    # non-finite KPI (no positives) is skipped
    rule.step(dict(cls=1e6, reg=1e-6), kpi=dict(cls=math.nan, reg=math.inf))
    assert rule.weights == w
    with pytest.raises(ValueError, match='kpi'):
        rule.step(dict(cls=1, reg=1), kpi=dict(cls=1.5, reg=0.5))
    with pytest.raises(ValueError, match='kpi'):
        rule.step(dict(cls=1, reg=1))
    with pytest.raises(ValueError, match='kpi'):
        rule.step(dict(cls=1, reg=1), kpi=dict(cls=0.5))


def test_state_dict_round_trip():
    rng = np.random.default_rng(1)
    kpi = rng.uniform(0, 1, size=(20, 2))
    full, part = DTP(), DTP()
    for i, row in enumerate(kpi):
        full.step(dict(cls=1, reg=1), kpi=dict(cls=row[0], reg=row[1]))
        if i < 9:
            part.step(dict(cls=1, reg=1), kpi=dict(cls=row[0], reg=row[1]))
    resumed = DTP()
    resumed.load_state_dict(part.state_dict())
    for row in kpi[9:]:
        resumed.step(dict(cls=1, reg=1), kpi=dict(cls=row[0], reg=row[1]))
    assert resumed.state_dict() == full.state_dict()
    assert resumed.weights == full.weights


@pytest.mark.parametrize('kw', [dict(gamma=-1), dict(gamma=dict(cls=1.0)),
                                dict(alpha=0), dict(alpha=1.5),
                                dict(eps=0.5), dict(eps=0)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        DTP(**kw)
