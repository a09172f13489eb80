"""RLW (Lin et al., TMLR'22, Algorithm 2): w(t) = softmax(N(0, I)), drawn
from a generator seeded by (seed, t): the oracle draws it with its own
torch.Generator; two ranks (two rules) agree without a collective, and a
state_dict round trip continues the stream."""
import math

import pytest
import torch
from torchjd.scalarization import Random

from _two_heads import weighted_vs_scalarized
from mmdet_alwa.weighting import RLW, build_rule


def splitmix64(x):
    """Steele, Lea, Flood, "Fast splittable pseudorandom number
    generators", OOPSLA 2014 (the constants of java.util.SplittableRandom)."""
    m = 2**64
    z = (x + 0x9E3779B97F4A7C15) % m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % m
    return z ^ (z >> 31)


def paper_weights(seed, t, k=2):
    g = torch.Generator().manual_seed(splitmix64((seed << 32) + t) >> 1)
    return torch.softmax(torch.randn(k, generator=g, dtype=torch.float64),
                         0).tolist()


def run(rule, iters, start=0):
    got = []
    for t in range(start, iters):
        losses = dict(cls=1.0 + t, reg=2.0)
        got.append(list(rule.prepare(losses).values()))
        rule.step(losses)
    return got


def test_weights_are_the_seeded_draws():
    rule = RLW(seed=7)
    got = run(rule, 5)
    for w, expected in zip(got, [paper_weights(7, t) for t in range(5)]):
        assert w == pytest.approx(expected, rel=1e-15)
    assert all(sum(w) == pytest.approx(1.0) for w in got)
    assert len({tuple(w) for w in got}) == 5  # new weights every iteration
    assert RLW(seed=7, scale=2.0).prepare(dict(cls=1.0, reg=1.0)) == \
        pytest.approx(dict(zip(('cls', 'reg'),
                               [2 * w for w in paper_weights(7, 0)])))


def test_two_ranks_agree_and_global_rng_is_untouched():
    torch.manual_seed(123)
    rank0, rank1 = RLW(seed=3), RLW(seed=3)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    for it in range(4):
        w0 = rank0.prepare(dict(cls=t(1.0), reg=t(2.0)))
        torch.randn(5)  # rank 1's own random work in between
        w1 = rank1.prepare(dict(cls=t(1.0), reg=t(2.0)))
        assert torch.equal(torch.stack(list(w0.values())),
                           torch.stack(list(w1.values())))
        rank0.step(dict(cls=1.0, reg=2.0))
        rank1.step(dict(cls=1.0, reg=2.0))
    torch.manual_seed(123)
    torch.randn(5 * 4)
    after = torch.get_rng_state()
    torch.manual_seed(123)
    torch.randn(5 * 4)
    assert torch.equal(after, torch.get_rng_state())  # only rank 1's draws
    assert RLW(seed=4).prepare(dict(cls=1.0, reg=1.0)) != \
        RLW(seed=3).prepare(dict(cls=1.0, reg=1.0))


def test_resume_continues_the_stream():
    full = run(RLW(seed=5), 8)
    part = RLW(seed=5)
    run(part, 3)
    resumed = build_rule(dict(type='RLW', seed=5))
    resumed.load_state_dict(part.state_dict())
    assert run(resumed, 8, start=3) == full[3:]
    with pytest.raises(ValueError, match='seed'):
        RLW(seed=6).load_state_dict(part.state_dict())


def test_gradient_equals_torchjd_random_with_the_same_seed():
    rule = RLW(seed=2)

    def scalarize(losses):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(splitmix64(2 << 32) >> 1)
            return Random()(losses)

    ours, direct = weighted_vs_scalarized(rule, scalarize)
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_nonfinite_keeps_last_weights():
    rule = RLW(seed=0)
    first = rule.prepare(dict(cls=1.0, reg=1.0))
    rule.step(dict(cls=1.0, reg=1.0))
    assert rule.prepare(dict(cls=math.nan, reg=1.0)) == first
    rule.step(dict(cls=math.nan, reg=1.0))
    assert rule.num_fallbacks == 1 and rule.num_nonfinite['cls'] == 1


@pytest.mark.parametrize('kw', [dict(seed=-1), dict(seed=2**31),
                                dict(seed=1.5), dict(scale=-1)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        RLW(**kw)


def test_other_devices_are_refused():
    meta = torch.ones((), device='meta')
    with pytest.raises(ValueError, match='RLW draws on the CPU or a CUDA'):
        RLW().prepare(dict(cls=meta, reg=meta))
