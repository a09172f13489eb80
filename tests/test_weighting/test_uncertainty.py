import math

import pytest
import torch

from mmdet_alwa.weighting import build_rule
from mmdet_alwa.weighting.uncertainty import UncertaintyWeighting


def reference_loss(s, losses):
    """Kendall et al. Eq. 7 in log-variance form."""
    return sum(0.5 * torch.exp(-s[i]) * losses[i] + 0.5 * s[i]
               for i in range(len(losses)))


def test_matches_paper_and_trains_with_optimizer():
    torch.manual_seed(0)
    rule = UncertaintyWeighting(tasks=('cls', 'reg'), init_log_var=0.3)
    ref = torch.nn.Parameter(torch.full((2, ), 0.3))
    opt = torch.optim.SGD(rule.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD([ref], lr=0.1)
    for _ in range(50):
        raw = torch.rand(2) * torch.tensor([4.0, 0.5])
        loss = rule.weight_loss('cls', raw[0]) + \
            rule.weight_loss('reg', raw[1]) + rule.regularizer()
        ref_loss = reference_loss(ref, raw)
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
        opt.zero_grad(), ref_opt.zero_grad()
        loss.backward(), ref_loss.backward()
        opt.step(), ref_opt.step()
        rule.step(dict(cls=raw[0].item(), reg=raw[1].item()))
    torch.testing.assert_close(rule.log_vars.detach(), ref.detach())
    w = rule.weights
    assert w['cls'] == pytest.approx(0.5 * math.exp(-ref[0].item()))
    # s_i tends to log E[L_i]: the larger loss gets the smaller weight
    assert w['cls'] < w['reg']


def test_nonfinite_update_is_restored():
    rule = UncertaintyWeighting()
    opt = torch.optim.SGD(rule.parameters(), lr=0.1)
    for raw in [1.0, math.nan, 0.0, 1e6]:
        loss = rule.weight_loss('cls', torch.tensor(raw)) + \
            rule.weight_loss('reg', torch.tensor(1.0)) + rule.regularizer()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rule.step(dict(cls=raw, reg=1.0))
        assert torch.isfinite(rule.log_vars).all()
        assert all(math.isfinite(v) for v in rule.weights.values())
    assert rule.num_restored == 1 and rule.num_nonfinite['cls'] == 1


def test_state_dict_round_trip_in_place():
    rule = UncertaintyWeighting(init_log_var=-1.0)
    with torch.no_grad():
        rule.log_vars.add_(torch.tensor([0.25, -0.5]))
    other = build_rule(dict(type='UncertaintyWeighting'))
    param = other.parameters()[0]
    other.load_state_dict(rule.state_dict())
    assert other.parameters()[0] is param  # optimizer references survive
    torch.testing.assert_close(param.detach(), rule.log_vars.detach())
    assert other.state_dict() == rule.state_dict()


@pytest.mark.parametrize('kw', [dict(init_log_var=50), dict(init_log_var='a'),
                                dict(tasks=())])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        UncertaintyWeighting(**kw)
