"""GLS: weights w_k = S / (K L_k), S the geometric mean (Chennupati et al.
2019), worked by hand; the gradient they give equals that of TorchJD's
GeometricMean back-propagated directly."""
import math

import pytest
import torch
from torchjd.scalarization import GeometricMean

from _two_heads import weighted_vs_scalarized
from mmdet_alwa.weighting import GLS, build_rule


def test_hand_worked_weights():
    # losses (1, 4): S = sqrt(4) = 2, w = 2 / (2 * (1, 4)) = (1, 0.25)
    assert GLS().prepare(dict(cls=1.0, reg=4.0)) == \
        pytest.approx(dict(cls=1.0, reg=0.25), rel=1e-15)
    # three tasks (1, 2, 4): S = 8 ** (1/3) = 2, w = 2 / (3 * L)
    rule = GLS(tasks=('a', 'b', 'c'))
    assert rule.prepare(dict(a=1.0, b=2.0, c=4.0)) == pytest.approx(
        dict(a=2 / 3, b=1 / 3, c=1 / 6), rel=1e-14)
    # scale multiplies
    assert GLS(scale=2.0).prepare(dict(cls=1.0, reg=4.0)) == \
        pytest.approx(dict(cls=2.0, reg=0.5))


def test_gradient_equals_torchjd_geometric_mean():
    ours, direct = weighted_vs_scalarized(GLS(), GeometricMean())
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_device_tensors_and_fallback_on_nan_inf_zero():
    """Tensors in: 0-d tensors out (the glue); a NaN (no rank finite), an
    inf or a zero loss (0 * inf in dS/dL) keeps the last weights, counted
    from the flag read with the statistics (device_state)."""
    rule = GLS()
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    w = rule.prepare(dict(cls=t(1.0), reg=t(4.0)))
    assert isinstance(w['cls'], torch.Tensor)
    state = rule.device_state()
    rule.set_device_values(torch.cat([s.reshape(-1) for s in state]).tolist())
    rule.step(dict(cls=1.0, reg=4.0))
    assert rule.weights == pytest.approx(dict(cls=1.0, reg=0.25))
    for bad in (math.nan, math.inf, 0.0):
        w = rule.prepare(dict(cls=t(bad), reg=t(4.0)))
        assert float(w['cls']) == 1.0 and float(w['reg']) == 0.25
        rule.step(dict(cls=bad, reg=4.0))
    assert rule.num_fallbacks == 3
    assert rule.num_nonfinite == dict(cls=2, reg=0)
    assert rule.log_scalars()['num_fallbacks'] == 3.0
    # the first iteration's fallback: the weights at equal unit losses
    first = GLS()
    assert first.prepare(dict(cls=0.0, reg=1.0)) == dict(cls=0.5, reg=0.5)


def test_negative_loss_is_torchjds_error():
    with pytest.raises(ValueError, match='non-negative'):
        GLS().prepare(dict(cls=-1.0, reg=1.0))


def test_state_round_trip():
    rule = GLS()
    rule.prepare(dict(cls=2.0, reg=8.0))
    rule.step(dict(cls=2.0, reg=8.0))
    resumed = build_rule(dict(type='GLS'))
    resumed.load_state_dict(rule.state_dict())
    # the fallback after a resume is the last applied weights
    assert resumed.prepare(dict(cls=math.nan, reg=1.0)) == \
        pytest.approx(dict(cls=1.0, reg=0.25))
    assert resumed.state_dict()['num_fallbacks'] == 1


@pytest.mark.parametrize('kw', [dict(scale=0), dict(tasks=())])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        GLS(**kw)
