"""ALWA against a direct transcription of Algorithm 1 (Yu et al.)."""
import copy
import math

import numpy as np
import pytest
import torch

from mmdet_alwa.weighting import ALWA, build_rule


def algorithm1(stream, variant, C, lam0):
    """Algorithm 1 line by line (steps counted from 1, see ALWA's docstring);
    returns α after every step."""
    alpha = 1.0                                     # line 2
    S_cls, S_reg = [], []                           # line 3
    alphas = []
    for i, (l_cls, l_reg) in enumerate(stream, start=1):
        L_cls, L_reg = alpha * lam0 * l_cls, lam0 * l_reg   # line 6
        S_cls.append(L_cls)                         # line 7
        S_reg.append(L_reg)
        if i % C == 0:                              # line 8
            cls_mean, cls_std = np.mean(S_cls), np.std(S_cls, ddof=1)
            reg_mean, reg_std = np.mean(S_reg), np.std(S_reg, ddof=1)
            S_cls, S_reg = [], []                   # line 11
            if variant == 1:                        # line 12
                cls, reg = cls_mean + cls_std, reg_mean + reg_std
            else:
                cls, reg = cls_std, reg_std
            if cls > reg:                           # line 13
                alpha = reg / cls                   # line 14
        alphas.append(alpha)
    return alphas


def make_stream(n, seed, cls_level=3.0, reg_level=0.6, trend=True):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    decay = np.exp(-t / n) if trend else np.ones(n)
    cls = cls_level * decay * (1 + 0.3 * rng.standard_normal(n)).clip(0.05)
    reg = reg_level * decay * (1 + 0.3 * rng.standard_normal(n)).clip(0.05)
    return list(zip(cls.tolist(), reg.tolist()))


def run(rule, stream):
    alphas = []
    for l_cls, l_reg in stream:
        rule.step({'cls': l_cls, 'reg': l_reg})
        alphas.append(rule.alpha)
    return alphas


@pytest.mark.parametrize('variant', [1, 2])
@pytest.mark.parametrize('C,lam0', [(2, 1.0), (5, 0.5), (20, 1.0),
                                    (100, 1.25)])
def test_matches_algorithm1(variant, C, lam0):
    stream = make_stream(450, seed=C + variant)
    rule = ALWA(variant=variant, interval=C, init_weight=lam0)
    expected = algorithm1(stream, variant, C, lam0)
    got = run(rule, stream)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the trajectory is not trivial: α moved at least once
    assert len(set(expected)) > 1
    assert rule.weights == {'cls': got[-1] * lam0, 'reg': lam0}


def test_alpha_changes_only_at_window_ends():
    C = 7
    rule = ALWA(interval=C)
    prev = rule.alpha
    for i, (c, r) in enumerate(make_stream(70, seed=1), start=1):
        rule.step({'cls': c, 'reg': r})
        if i % C:
            assert rule.alpha == prev
            assert len(rule.windows['cls']) == i % C
        else:
            assert rule.windows == {'cls': [], 'reg': []}
        prev = rule.alpha
    assert rule.num_windows == 10


def test_windows_hold_weighted_losses():
    rule = ALWA(interval=2, init_weight=0.5)
    rule.step({'cls': 4.0, 'reg': 2.0})
    rule.step({'cls': 4.0, 'reg': 2.0})       # α = (1 + 0) / (2 + 0)
    assert rule.alpha == pytest.approx(0.5)
    rule.step({'cls': 4.0, 'reg': 1.0})
    assert rule.windows == {'cls': [4.0 * 0.5 * 0.5], 'reg': [0.5]}


def test_oscillation_faithful_vs_multiplicative():
    """Stationary noisy stream, raw ratio (mean+std) r = 1.3 / 5.2 = 0.25."""
    stream = make_stream(4000, seed=1, cls_level=4.0, reg_level=1.0,
                         trend=False)
    C = 20
    faithful = run(ALWA(variant=1, interval=C), stream)[C - 1::C]
    mult = run(ALWA(variant=1, interval=C, mode='multiplicative'),
               stream)[C - 1::C]
    faithful, mult = np.array(faithful[1:]), np.array(mult[1:])
    # faithful: α = r̂ / α_old whenever α_old > r̂, so it keeps jumping
    # between about r and about 1
    assert (np.abs(np.diff(faithful)) > 0.3).mean() > 0.3
    assert (faithful > 0.6).mean() > 0.2 and (faithful < 0.35).mean() > 0.2
    # multiplicative: α follows the window estimate of r, never jumps to 1
    assert np.abs(np.diff(mult)).max() < 0.15
    assert np.all((mult > 0.15) & (mult < 0.35))
    assert abs(np.median(mult) - 0.25) < 0.02


def test_multiplicative_rises_back_and_is_clipped():
    rule = ALWA(interval=2, mode='multiplicative', alpha_min=0.1)
    for _ in range(2):
        rule.step({'cls': 100.0, 'reg': 1.0})
    assert rule.alpha == pytest.approx(0.1)          # floor
    for _ in range(2):
        rule.step({'cls': 1.0, 'reg': 2.0})          # regression dominates
    assert rule.alpha == 1.0                         # clipped at 1
    rule = ALWA(interval=2, mode='multiplicative')
    rule.step({'cls': 4.0, 'reg': 1.0})
    rule.step({'cls': 4.0, 'reg': 1.0})              # std 0, mean ratio
    assert rule.alpha == pytest.approx(0.25)
    rule.step({'cls': 2.0, 'reg': 1.0})
    rule.step({'cls': 2.0, 'reg': 1.0})
    assert rule.alpha == pytest.approx(0.5)          # rises back


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_nonfinite_loss_not_recorded(bad):
    rule = ALWA(interval=3)
    rule.step({'cls': 4.0, 'reg': 1.0})
    rule.step({'cls': bad, 'reg': 1.2})
    assert rule.windows == {'cls': [4.0], 'reg': [1.0, 1.2]}
    assert rule.num_nonfinite == {'cls': 1, 'reg': 0}
    assert rule.log_scalars()['nonfinite_cls'] == 1.0
    rule.step({'cls': 5.0, 'reg': torch.tensor(bad)})
    assert math.isfinite(rule.alpha) and 0 < rule.alpha < 1
    assert rule.num_nonfinite == {'cls': 1, 'reg': 1}


def test_degenerate_windows_leave_alpha_unchanged():
    # fewer than two finite values: undefined std
    rule = ALWA(interval=3)
    rule.step({'cls': 4.0, 'reg': 1.0})
    rule.step({'cls': math.nan, 'reg': math.nan})
    rule.step({'cls': math.inf, 'reg': math.nan})
    assert rule.alpha == 1.0 and rule.num_windows == 1
    assert 'cls_std' not in rule.log_scalars()
    # zero regression statistic: α would become 0
    for variant in (1, 2):
        rule = ALWA(variant=variant, interval=2)
        rule.step({'cls': 4.0, 'reg': 0.0})
        rule.step({'cls': 5.0, 'reg': 0.0})
        assert rule.alpha == 1.0
    # zero cls statistic (ALWA_2, constant cls)
    rule = ALWA(variant=2, interval=2, mode='multiplicative')
    rule.step({'cls': 4.0, 'reg': 1.0})
    rule.step({'cls': 4.0, 'reg': 2.0})
    assert rule.alpha == 1.0
    # overflowing statistic
    rule = ALWA(interval=2)
    rule.step({'cls': 1e308, 'reg': 1.0})
    rule.step({'cls': -1e308, 'reg': 2.0})
    assert rule.alpha == 1.0


def test_alpha_floor_in_faithful_mode():
    rule = ALWA(interval=2, alpha_min=1e-3)
    rule.step({'cls': 1e6, 'reg': 1e-6})
    rule.step({'cls': 2e6, 'reg': 1e-6})
    assert rule.alpha == 1e-3


@pytest.mark.parametrize('kwargs,name', [
    (dict(variant=3), 'variant'), (dict(variant=0), 'variant'),
    (dict(variant=True), 'variant'), (dict(variant='1'), 'variant'),
    (dict(interval=0), 'interval'), (dict(interval=1), 'interval'),
    (dict(interval=2.0), 'interval'), (dict(init_weight=0), 'init_weight'),
    (dict(init_weight=-1.0), 'init_weight'),
    (dict(init_weight=math.nan), 'init_weight'), (dict(mode='x'), 'mode'),
    (dict(alpha_min=0.0), 'alpha_min'), (dict(alpha_min=1.5), 'alpha_min'),
    (dict(start=-1), 'start'), (dict(start=1.5), 'start'),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ALWA(**kwargs)


def test_bad_step_keys():
    with pytest.raises(ValueError, match='raw_losses'):
        ALWA().step({'cls': 1.0})


def test_state_dict_round_trip():
    stream = make_stream(130, seed=7)
    rule = ALWA(variant=2, interval=20, init_weight=0.75)
    run(rule, stream[:53])                   # mid-window
    rule.step({'cls': math.nan, 'reg': 1.0})
    state = copy.deepcopy(rule.state_dict())
    clone = build_rule(dict(type='ALWA', variant=2, interval=20,
                            init_weight=0.75))
    clone.load_state_dict(state)
    assert clone.state_dict() == rule.state_dict()
    assert run(clone, stream[53:]) == run(rule, stream[53:])
    assert clone.state_dict() == rule.state_dict()
    with pytest.raises(ValueError, match='rule'):
        clone.load_state_dict(dict(state, type='DWA'))
    with pytest.raises(ValueError, match='alpha'):
        clone.load_state_dict(dict(state, alpha=math.nan))


def test_log_scalars_and_weight_loss():
    rule = ALWA(interval=2, init_weight=0.5)
    assert rule.log_scalars()['alpha'] == 1.0
    rule.step({'cls': 4.0, 'reg': 1.0})
    rule.step({'cls': 6.0, 'reg': 1.0})
    scalars = rule.log_scalars()
    assert scalars['cls_mean'] == pytest.approx(2.5)
    assert scalars['cls_std'] == pytest.approx(math.sqrt(0.5))
    assert scalars['reg_mean'] == 0.5 and scalars['reg_std'] == 0.0
    assert scalars['weight_cls'] == pytest.approx(rule.alpha * 0.5)
    loss = torch.tensor(2.0, requires_grad=True)
    rule.weight_loss('cls', loss).backward()
    assert loss.grad.item() == pytest.approx(rule.alpha * 0.5)


@pytest.mark.parametrize('start,alphas', [
    # Algorithm 1: the warm-up window [10, 10] vs [1, 1] sets α = 1/10; the
    # next windows hold α·4 = 0.4 < 2, so α stays locked at 0.1
    (0, [1.0, 0.1, 0.1, 0.1, 0.1, 0.1]),
    # start = 2: the warm-up steps are left out, the first window is
    # [4, 4] vs [2, 2]: α = 2 / 4; then 0.5·4 = 2 is not > 2: unchanged
    (2, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]),
])
def test_start_leaves_the_warmup_out(start, alphas):
    stream = [(10.0, 1.0)] * 2 + [(4.0, 2.0)] * 4
    rule = ALWA(variant=1, interval=2, start=start)
    got = []
    for i, (c, r) in enumerate(stream, start=1):
        rule.step({'cls': c, 'reg': r})
        got.append(rule.alpha)
        if i <= start:
            assert rule.windows == {'cls': [], 'reg': []}
    assert got == pytest.approx(alphas)
    assert rule.num_windows == (len(stream) - start) // 2


def test_start_with_algorithm1_on_the_remaining_stream():
    """start = S is Algorithm 1 run on the stream from step S + 1 on."""
    stream = make_stream(300, seed=3)
    S = 37
    rule = ALWA(variant=2, interval=20, start=S)
    got = run(rule, stream)
    assert got[:S] == [1.0] * S
    np.testing.assert_allclose(got[S:], algorithm1(stream[S:], 2, 20, 1.0),
                               rtol=1e-12)
