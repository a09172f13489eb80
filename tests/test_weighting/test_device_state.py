"""The rules' side of the one-host-read budget: Guided Loss's same-iteration
weights from device tensors, uncertainty weighting's log-variances handed
over with the statistics (``device_state`` / ``set_device_values``), and the
reads each makes, counted with ``count_host_reads``. Expectations worked
out by hand in the comments."""
import math

import pytest
import torch

from mmdet_alwa.utils.host_reads import count_host_reads
from mmdet_alwa.weighting import DWA, GuidedLoss, UncertaintyWeighting


def _t(v):
    return torch.tensor(v, dtype=torch.float64)


def test_guided_prepare_on_device_reads_nothing_and_matches_floats():
    # ratio reg / cls: 1 / 2; unusable losses (cls 0, NaN, cls <= eps) keep
    # the last ratio; the device path gives the python path's numbers
    on_device, on_host = GuidedLoss(), GuidedLoss()
    cases = [(2.0, 1.0, 0.5), (0.0, 1.0, 0.5), (math.nan, 1.0, 0.5),
             (1e-13, 1.0, 0.5), (4.0, 3.0, 0.75), (3.0, math.inf, 0.75)]
    for cls, reg, expected in cases:
        with count_host_reads() as reads:
            weights = on_device.prepare(dict(cls=_t(cls), reg=_t(reg)))
        assert reads.total == 0
        assert isinstance(weights['cls'], torch.Tensor)
        assert weights['reg'] == 1.0
        host = on_host.prepare(dict(cls=cls, reg=reg))
        assert float(weights['cls']) == host['cls'] == expected
        # asked before step(), weights reads the pending device ratio
        assert on_device.weights == dict(cls=expected, reg=1.0)
        for rule in (on_device, on_host):
            rule.step(dict(cls=cls, reg=reg))
        assert on_device.state_dict() == on_host.state_dict()


def test_guided_frozen_prepare_returns_the_frozen_floats():
    rule = GuidedLoss(mode='one_stage', warmup=1)
    rule.prepare(dict(cls=_t(2.0), reg=_t(1.0)))
    rule.step(dict(cls=2.0, reg=1.0))
    assert rule.frozen
    assert rule.prepare(dict(cls=_t(1.0), reg=_t(5.0))) == dict(cls=0.5,
                                                                reg=1.0)


def _sgd_step(rule, lr=0.5, fused=False):
    # L = sum_i exp(-s_i) L_i / 2 + s_i / 2 with L = (3, 1) from s = 0:
    # dL/ds = (1 - L_i) / 2 = (-1, 0); one SGD step of lr 0.5: s = (0.5, 0)
    opt = torch.optim.AdamW(rule.parameters(), lr=lr, fused=True) if fused \
        else torch.optim.SGD(rule.parameters(), lr=lr)
    loss = rule.weight_loss('cls', torch.tensor(3.0)) + rule.weight_loss(
        'reg', torch.tensor(1.0)) + rule.regularizer()
    loss.backward()
    opt.step()


def test_uncertainty_without_the_glue_reads_its_parameter_when_it_changed():
    rule = UncertaintyWeighting()
    assert rule.device_state() == [rule.log_vars]
    with count_host_reads() as reads:
        assert rule.weights == dict(cls=0.5, reg=0.5)
    assert reads.total == 0  # read at construction, unchanged since
    _sgd_step(rule)
    with count_host_reads() as reads:
        assert rule.weights == dict(cls=0.5 * math.exp(-0.5), reg=0.5)
        rule.log_scalars()
        rule.step(dict(cls=3.0, reg=1.0))  # no values handed over: reads
        rule.state_dict()
    assert reads.total == 2
    assert rule.state_dict()['log_vars'] == [0.5, 0.0]


def test_uncertainty_step_reads_after_a_fused_step():
    # a fused optimizer step does not bump the parameter's version: the
    # next step() reads anyway (AdamW's first step moves s_cls by -lr *
    # sign(grad) = +0.1; the zero gradient of reg leaves it)
    rule = UncertaintyWeighting()
    _sgd_step(rule, lr=0.1, fused=True)
    rule.step(dict(cls=3.0, reg=1.0))
    assert rule.weights['cls'] == pytest.approx(0.5 * math.exp(-0.1),
                                                rel=1e-6)
    assert rule.weights['reg'] == 0.5


def test_uncertainty_with_the_glue_reads_nothing():
    rule = UncertaintyWeighting()
    _sgd_step(rule)
    with count_host_reads() as reads:
        # the glue: the values read with the iteration's statistics
        rule.set_device_values(rule.log_vars.detach().double().tolist())
        reads.reset()  # that read is the glue's (one transfer), not these
        rule.step(dict(cls=3.0, reg=1.0))
        weights = rule.weights
        rule.log_scalars()
        rule.state_dict()
    assert reads.total == 0
    assert weights == dict(cls=0.5 * math.exp(-0.5), reg=0.5)
    # a non-finite parameter: restored to the last finite values, known
    # without a read
    with torch.no_grad():
        rule.log_vars.copy_(torch.tensor([math.nan, 1.0]))
    with count_host_reads() as reads:
        rule.set_device_values([math.nan, 1.0])
        rule.step(dict(cls=3.0, reg=1.0))
        assert rule.weights == weights
    assert reads.total == 0
    assert rule.num_restored == 1
    assert rule.log_vars.tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match='2 log-variances'):
        rule.set_device_values([0.0])


def test_rules_without_device_state():
    rule = DWA()
    assert rule.device_state() == []
    rule.set_device_values([])
    with pytest.raises(ValueError, match='no device state'):
        rule.set_device_values([1.0])


def test_dwa_window_update_reads_nothing():
    # windows of 1: w = 1, 1, then K softmax(r / T) with r = (2, 1 / 2),
    # T = 2: exp(1) and exp(1/4) normalised, times 2
    rule = DWA(interval=1)
    with count_host_reads() as reads:
        for cls, reg in ((1.0, 2.0), (2.0, 1.0)):
            rule.step(dict(cls=cls, reg=reg))
    assert reads.total == 0
    z = math.exp(1) + math.exp(0.25)
    assert rule.weights == pytest.approx(dict(cls=2 * math.exp(1) / z,
                                              reg=2 * math.exp(0.25) / z),
                                         rel=1e-15)
