import math

import numpy as np
import pytest
import torch

from mmdet_alwa.weighting.gradnorm import GradNorm
from mmdet_alwa.weighting.tdb import TDB


def toy_stream(steps=30, seed=0):
    """Losses and unweighted gradient norms of a toy shared layer W."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(4, 3, generator=g)
    heads = [torch.randn(3, generator=g) * s for s in (1.0, 5.0)]
    out = []
    for t in range(steps):
        x = torch.randn(8, 4, generator=g)
        Wp = W.clone().requires_grad_()
        losses = [((x @ Wp @ h)**2).mean() * math.exp(-0.05 * t * (i + 1))
                  for i, h in enumerate(heads)]
        out.append(([v.item() for v in losses], losses, Wp))
    return out


def reference(stream, alpha, lr, penalties_of=None, relative=False,
              interval=1):
    """GradNorm Algorithm 1 / TDB Eq. 10-16 with autograd on the weights;
    ``relative``: the learning rate divided by the mean unweighted gradient
    norm of the iteration; ``interval``: only iterations 0, interval, ...
    update the weights (L(0) and the counts still see every iteration)."""
    w = torch.ones(2, dtype=torch.float64)
    L0, counts, out = None, np.zeros(2), []
    for t, (vals, losses, Wp) in enumerate(stream):
        if t % interval:
            L0 = vals if L0 is None else L0
            if penalties_of is not None:
                counts += penalties_of(t)
            out.append(w.numpy().copy())
            continue
        wp = w.clone().requires_grad_()
        G = torch.stack([
            torch.autograd.grad(losses[i], Wp, retain_graph=True)[0]
            .double().norm() * wp[i] for i in range(2)])     # Eq. 11
        L0 = vals if L0 is None else L0
        Lhat = torch.tensor(vals, dtype=torch.float64) / torch.tensor(L0)
        r = Lhat / Lhat.mean()                                # Eq. 13-14
        target = (G.mean() * r**alpha).detach()               # Eq. 12
        p = torch.ones(2, dtype=torch.float64)
        if penalties_of is not None:
            counts += penalties_of(t)
            p = torch.tensor(counts.sum() / counts)           # N / n_j
            p = p / p.mean()
        Lgrad = (p * (G - target).abs()).sum()                # Eq. 10
        grad, = torch.autograd.grad(Lgrad, wp)
        step = lr / (G / wp).mean().item() if relative else lr
        w = (w - step * grad).detach()
        w = 2 * w / w.sum()                                   # Eq. 15-16
        out.append(w.numpy().copy())
    return out


def feed(rule, stream, counts_of=None):
    got = []
    for t, (vals, losses, Wp) in enumerate(stream):
        norms = {k: torch.autograd.grad(losses[i], Wp, retain_graph=True)[0]
                 .double().norm().item() for i, k in enumerate(rule.tasks)}
        extra = {}
        if counts_of is not None:
            extra['num_samples'] = dict(zip(rule.tasks, counts_of(t)))
        rule.step(dict(zip(rule.tasks, vals)), grad_norm=norms, **extra)
        got.append([rule.weights[k] for k in rule.tasks])
    return np.array(got)


@pytest.mark.parametrize('lr_scale,lr', [('absolute', 0.01),
                                         ('grad_norm', 0.1)])
def test_gradnorm_matches_algorithm_1(lr_scale, lr):
    stream = toy_stream()
    rule = GradNorm(alpha=1.5, lr=lr, lr_scale=lr_scale, min_weight=1e-6,
                    max_step_factor=None)
    got = feed(rule, stream)
    ref = np.array(reference(stream, 1.5, lr,
                             relative=lr_scale == 'grad_norm'))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    assert got.sum(1) == pytest.approx(2.0)
    assert not np.allclose(got[-1], 1.0)


def counts(t):
    return np.array([256.0, 10.0 + t])  # sampled anchors vs positives


def test_tdb_matches_eq_10_16():
    stream = toy_stream(seed=1)
    rule = TDB(theta=1.0, lr=0.003, lr_scale='absolute', min_weight=1e-6,
               max_step_factor=None)
    got = feed(rule, stream, counts)
    ref = np.array(reference(stream, 1.0, 0.003, counts))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    assert rule.sample_counts['cls'] == 256.0 * len(stream)
    # the penalty changes the trajectory compared with plain GradNorm
    plain = feed(GradNorm(alpha=1.0, lr=0.003, lr_scale='absolute',
                          min_weight=1e-6, max_step_factor=None), stream)
    assert not np.allclose(got, plain)


@pytest.mark.parametrize('cls', [GradNorm, TDB])
def test_interval_updates_every_kth_step_without_norms_between(cls):
    stream = toy_stream(seed=1)
    kw = dict(lr=0.001, lr_scale='absolute', min_weight=1e-6,
              max_step_factor=None, interval=3)
    rule = cls(**kw)
    counts_of = counts if cls is TDB else None
    wanted, got = [], []
    for t, (vals, losses, Wp) in enumerate(stream):
        wanted.append(rule.updates_next())
        norms = {k: (torch.autograd.grad(losses[i], Wp, retain_graph=True)[0]
                     .double().norm().item() if wanted[-1] else math.nan)
                 for i, k in enumerate(rule.tasks)}
        extra = {} if counts_of is None else dict(
            num_samples=dict(zip(rule.tasks, counts_of(t))))
        rule.step(dict(zip(rule.tasks, vals)), grad_norm=norms, **extra)
        got.append([rule.weights[k] for k in rule.tasks])
    assert wanted[:7] == [True, False, False, True, False, False, True]
    alpha = 1.5 if cls is GradNorm else 1.0
    ref = reference(stream, alpha, 0.001, counts_of, interval=3)
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=1e-9)
    assert rule.num_skipped == 0  # the NaN norms between updates: expected
    assert got[3] != got[2] and got[1] == got[2] == got[0] != [1.0, 1.0]


@pytest.mark.parametrize('cls', [GradNorm, TDB])
def test_edge_cases_stay_finite(cls):
    rule = cls(lr=0.5)
    extra = dict(num_samples=dict(cls=100, reg=0)) if cls is TDB else {}
    # TDB without any regression sample yet: skipped
    rule.step(dict(cls=1.0, reg=1.0), grad_norm=dict(cls=1.0, reg=2.0),
              **extra)
    if cls is TDB:
        assert rule.num_skipped == 1
        extra = dict(num_samples=dict(cls=100, reg=5))
    for losses, norms in [
            (dict(cls=math.nan, reg=1.0), dict(cls=1.0, reg=1.0)),
            (dict(cls=1.0, reg=1.0), dict(cls=math.inf, reg=1.0)),
            (dict(cls=0.0, reg=0.0), dict(cls=0.0, reg=0.0)),
            (dict(cls=1e6, reg=1.0), dict(cls=1e6, reg=1.0)),
            (dict(cls=1e300, reg=1e-300), dict(cls=1e300, reg=1e-300))]:
        rule.step(losses, grad_norm=norms, **extra)
        w = rule.weights
        assert all(math.isfinite(v) and v > 0 for v in w.values())
        assert sum(w.values()) == pytest.approx(2.0)
    assert rule.num_skipped >= 2
    with pytest.raises(ValueError, match='grad_norm'):
        rule.step(dict(cls=1.0, reg=1.0), **extra)


@pytest.mark.parametrize('cls', [GradNorm, TDB])
def test_state_dict_round_trip(cls):
    stream = toy_stream(steps=12, seed=2)
    ctr = counts if cls is TDB else None
    full = cls(lr=0.01)
    feed(full, stream, ctr)
    part = cls(lr=0.01)
    feed(part, stream[:5], ctr)
    resumed = cls(lr=0.01)
    resumed.load_state_dict(part.state_dict())
    feed(resumed, stream[5:], (lambda t: counts(t + 5)) if ctr else None)
    assert resumed.state_dict() == full.state_dict()


@pytest.mark.parametrize('cls', [GradNorm, TDB])
def test_initial_loss_is_first_positive_loss(cls):
    """The issue's hand-worked example: after step(cls=1, reg=0) and 200
    steps of (1, 0.5) with equal gradient norms, L(0) = (1, 0.5), so every
    relative loss is 1, every G_i equals the target and the weights stay
    {1, 1} (with a zero L_reg(0) floored to 1e-12 they drifted to
    {0.001, 1.999})."""
    rule = cls()
    extra = dict(num_samples=dict(cls=10, reg=3)) if cls is TDB else {}
    norms = dict(cls=3.0, reg=3.0)
    rule.step(dict(cls=1.0, reg=0.0), grad_norm=norms, **extra)
    # no L_reg(0) yet: the weights keep their initial values
    assert rule.weights == dict(cls=1.0, reg=1.0) and rule.num_skipped == 1
    assert rule.initial_loss == dict(cls=1.0, reg=None)
    for _ in range(200):
        rule.step(dict(cls=1.0, reg=0.5), grad_norm=norms, **extra)
    assert rule.initial_loss == dict(cls=1.0, reg=0.5)
    assert rule.weights == dict(cls=1.0, reg=1.0)
    assert rule.num_skipped == 1


@pytest.mark.parametrize('kw,expected', [
    # scale-free: w_cls = 1 - 0.025 * 100 / 50.5, w_reg = 1 + 0.025 / 50.5,
    # then renormalised to sum 2
    (dict(), (2 * (1 - 2.5 / 50.5) / (2 - 2.5 / 50.5 + 0.025 / 50.5))),
    # absolute step 1 - 0.025 * 100 = -1.5, bounded at 1 / 2; reg 1.025
    (dict(lr_scale='absolute'), 2 * 0.5 / 1.525),
    # absolute, unbounded: clamped at min_weight 1e-3
    (dict(lr_scale='absolute', max_step_factor=None), 2 * 1e-3 / 1.026)])
def test_step_size_and_bound(kw, expected):
    """One step from w = (1, 1) with the losses at L(0) (targets = mean G)
    and gradient norms (100, 1): G = (100, 1), mean 50.5, so the cls weight
    falls and the reg weight rises."""
    rule = GradNorm(lr=0.025, **kw)
    rule.step(dict(cls=1.0, reg=1.0), grad_norm=dict(cls=1.0, reg=1.0))
    assert rule.weights == dict(cls=1.0, reg=1.0)
    rule.step(dict(cls=1.0, reg=1.0), grad_norm=dict(cls=100.0, reg=1.0))
    assert rule.weights['cls'] == pytest.approx(expected, rel=1e-12)
    assert sum(rule.weights.values()) == pytest.approx(2.0)


def test_bounded_step_falls_at_most_factor_squared():
    rule = GradNorm(lr=10.0, max_step_factor=2.0, alpha=0.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        before = rule.weights
        norms = dict(zip(rule.tasks, rng.uniform(0.01, 100, 2)))
        rule.step(dict(zip(rule.tasks, rng.uniform(0.1, 2, 2))),
                  grad_norm=norms)
        for t, w in rule.weights.items():
            assert w >= before[t] / 4 * (1 - 1e-12)


@pytest.mark.parametrize('kw', [dict(alpha=-1), dict(lr=0), dict(lr=math.nan),
                                dict(min_weight=0), dict(min_weight=2),
                                dict(lr_scale='relative'),
                                dict(max_step_factor=1.0), dict(interval=0),
                                dict(interval=1.5)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        GradNorm(**kw)
    if 'alpha' in kw:
        with pytest.raises(ValueError, match='alpha'):
            TDB(theta=kw['alpha'])
