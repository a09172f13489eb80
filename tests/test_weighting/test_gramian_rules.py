"""Gradient aggregation through TorchJD's Gramian weightings (UPGrad, MGDA,
PCGrad, IMTL-G, Aligned-MTL, DualProj, CAGrad).

Oracles: the update J^T w worked out by hand from each paper's definition
on small explicit gradients (orthogonal, conflicting, a duplicated task);
Aligned-MTL's and CAGrad's closed forms evaluated with numpy / scipy; and
TorchJD's *Aggregator* on an explicit Jacobian from ``torch.func`` (a
different code path from our Gramian plus Weighting). The glue on real
detectors: tests/test_integration/test_detector_matrix.py.
"""
import math
from unittest import mock

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from torchjd import aggregation as A

from mmdet_alwa.weighting import (CAGrad, GramianWeighting, MGDA, PCGrad,
                                  UPGrad, build_rule, representation_gramian)
from mmdet_alwa.weighting.gramian import gramian_stats

METHODS = ['UPGrad', 'MGDA', 'PCGrad', 'IMTL_G', 'AlignedMTL', 'DualProj',
           'CAGrad']
R2 = math.sqrt(2)


def _update(method, jac, **kwargs):
    """J^T w with the rule's weights for the explicit Jacobian ``jac``."""
    jac = torch.tensor(jac, dtype=torch.float64)
    tasks = tuple(f't{i}' for i in range(len(jac)))
    rule = build_rule(dict(type=method, tasks=tasks, **kwargs))
    w = rule.prepare({t: 1.0 for t in tasks}, gramian=jac @ jac.T)
    return (torch.tensor([float(w[t]) for t in tasks],
                         dtype=torch.float64) @ jac).tolist()


def _aligned_mtl(jac):
    # Senushkin et al., Alg. 1: w = sigma_min V S^-1 V^T p, G = V S^2 V^T,
    # over the non-zero singular values; p uniform
    jac = np.asarray(jac, dtype=float)
    lam, v = np.linalg.eigh(jac @ jac.T)
    keep = lam > 1e-9 * lam.max()
    s = np.sqrt(lam[keep])
    p = np.full(len(jac), 1 / len(jac))
    w = s.min() * v[:, keep] @ np.diag(1 / s) @ v[:, keep].T @ p
    return (w @ jac).tolist()


def _cagrad(jac, c=0.4):
    # Liu et al., Eq. 4 for two tasks: w = (x, 1 - x) minimises
    # g_w . g0 + sqrt(phi) |g_w|, phi = c^2 |g0|^2; the update is
    # g0 + sqrt(phi) / |g_w| g_w
    jac = np.asarray(jac, dtype=float)
    g0 = jac.mean(0)
    sqrt_phi = c * np.linalg.norm(g0)

    def dual(x):
        gw = np.array([x, 1 - x]) @ jac
        return gw @ g0 + sqrt_phi * np.linalg.norm(gw)

    x = minimize_scalar(dual, bounds=(0, 1), method='bounded',
                        options=dict(xatol=1e-12)).x
    gw = np.array([x, 1 - x]) @ jac
    return (g0 + sqrt_phi / np.linalg.norm(gw) * gw).tolist()


ORTHOGONAL = [[1, 0], [0, 2]]
CONFLICT = [[1, 0], [-1, 1]]       # cos = -1/sqrt(2)
DUPLICATED = [[1, 0], [0, 1], [1, 0]]
HAND = {
    # min-norm point of the segment: w = (4/5, 1/5)
    ('MGDA', 'orthogonal'): [0.8, 0.4],
    # (2w - 1)^2 + (1 - w)^2 is least at w = 0.6
    ('MGDA', 'conflict'): [0.2, 0.4],
    ('MGDA', 'duplicated'): [0.5, 0.5],
    # no conflict: the sum
    ('PCGrad', 'orthogonal'): [1, 2],
    # g1 + g2/2 (projected off g2) plus g2 + g1 (projected off g1)
    ('PCGrad', 'conflict'): [0.5, 1.5],
    ('PCGrad', 'duplicated'): [2, 1],
    # no conflict: the mean
    ('UPGrad', 'orthogonal'): [0.5, 1],
    # g1 onto the cone's ray x2 = x1: (1/2, 1/2); g2 onto x1 = 0: (0, 1)
    ('UPGrad', 'conflict'): [0.25, 0.75],
    ('UPGrad', 'duplicated'): [2 / 3, 1 / 3],
    # the mean, inside the dual cone each time
    ('DualProj', 'orthogonal'): [0.5, 1],
    ('DualProj', 'conflict'): [0, 0.5],
    ('DualProj', 'duplicated'): [2 / 3, 1 / 3],
    # equal projections on the unit gradients, weights summing to 1:
    # w = (2/3, 1/3); w2 = sqrt(2) - 1 for the conflict
    ('IMTL_G', 'orthogonal'): [2 / 3, 2 / 3],
    ('IMTL_G', 'conflict'): [3 - 2 * R2, R2 - 1],
    ('IMTL_G', 'duplicated'): [0.5, 0.5],
    ('AlignedMTL', 'orthogonal'): _aligned_mtl(ORTHOGONAL),
    ('AlignedMTL', 'conflict'): _aligned_mtl(CONFLICT),
    ('AlignedMTL', 'duplicated'): _aligned_mtl(DUPLICATED),
    ('CAGrad', 'orthogonal'): _cagrad(ORTHOGONAL),
    ('CAGrad', 'conflict'): _cagrad(CONFLICT),
}
CASES = dict(orthogonal=ORTHOGONAL, conflict=CONFLICT, duplicated=DUPLICATED)


@pytest.mark.parametrize('method,case', sorted(HAND))
def test_update_worked_by_hand(method, case):
    # TorchJD's quadprog projector (UPGrad, DualProj) adds reg_eps = 1e-4
    # to the diagonal of the normalised Gramian for its solver's sake
    tol = 5e-4 if method in ('UPGrad', 'DualProj') else 2e-6
    assert _update(method, CASES[case]) == pytest.approx(
        HAND[method, case], abs=tol)


def test_aligned_mtl_hand_value():
    # the closed form evaluated above, checked once by hand: orthogonal
    # gradients of norms 1 and 2 are each brought to norm 1 / 2
    assert _aligned_mtl(ORTHOGONAL) == pytest.approx([0.5, 0.5])


def test_cagrad_c0_is_the_mean():
    assert _update('CAGrad', CONFLICT, c=0.0) == pytest.approx(
        [0, 0.5], abs=1e-6)


@pytest.mark.parametrize('method,case', sorted(HAND))
@pytest.mark.parametrize('scale', [1e-10, 1e-6, 1e4])
def test_weights_do_not_depend_on_the_gradients_scale(method, case, scale):
    # the papers' updates are positively homogeneous: gradients scaled by
    # s give the update scaled by s. Representation gradients are tiny
    # (a trace far below TorchJD's absolute norm_eps = 1e-4, under which
    # its UPGrad / DualProj return the mean and CAGrad zero): the hand
    # values above must hold at every scale
    expected = HAND[method, case]
    jac = (torch.tensor(CASES[case], dtype=torch.float64) * scale).tolist()
    tol = 5e-4 if method in ('UPGrad', 'DualProj') else 2e-6
    assert [v / scale for v in _update(method, jac)] == pytest.approx(
        expected, abs=tol)


def test_cagrad_on_a_tiny_gramian_by_hand():
    # orthogonal unit gradients scaled by 1e-4 (trace 2e-8): g0 = (1, 1)/2,
    # g_w* = g0 (w* = (1/2, 1/2) by symmetry), so the update is
    # g0 (1 + c) and each weight 0.5 * 1.4 = 0.7; TorchJD alone gives 0
    w = CAGrad().prepare(dict(cls=1.0, reg=1.0),
                         gramian=torch.eye(2) * 1e-8)
    assert [float(w['cls']), float(w['reg'])] == pytest.approx([0.7, 0.7])
    assert A.CAGradWeighting(c=0.4)(
        torch.eye(2, dtype=torch.float64) * 1e-8).tolist() == [0.0, 0.0]


@pytest.mark.parametrize('method', METHODS)
def test_zero_gramian_keeps_the_last_weights(method):
    # no gradient reached the representation: nothing to aggregate
    rule = build_rule(dict(type=method))
    rule.prepare(dict(cls=1.0, reg=1.0), gramian=torch.tensor(
        [[1., 0.], [0., 4.]]))
    rule.step(dict(cls=1.0, reg=1.0))
    before = rule.weights
    rule.prepare(dict(cls=1.0, reg=1.0), gramian=torch.zeros(2, 2))
    rule.step(dict(cls=1.0, reg=1.0))
    assert rule.weights == before
    assert rule.num_fallbacks == 1


class _Net(torch.nn.Module):
    """A shared trunk with two representation 'levels' and three heads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = torch.nn.Linear(6, 8)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(8, 1)
                                         for _ in range(3))

    def losses(self, z1, z2):
        z = torch.cat([z1, z2], dim=1)
        return torch.stack([(h(z) ** 2).mean() * (i + 1)
                            for i, h in enumerate(self.heads)])


@pytest.mark.parametrize('method', METHODS)
def test_matches_torchjd_aggregator_on_explicit_jacobian(method):
    net = _Net()
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    z = net.trunk(x)
    z1, z2 = z[:, :3], z[:, 3:]
    k = 3
    # explicit Jacobian of the losses at (z1, z2) by torch.func
    j1, j2 = torch.func.jacrev(net.losses, argnums=(0, 1))(
        z1.detach(), z2.detach())
    jac = torch.cat([j1.reshape(k, -1), j2.reshape(k, -1)], 1).double()
    aggregator = dict(UPGrad=A.UPGrad(), MGDA=A.MGDA(), PCGrad=A.PCGrad(),
                      IMTL_G=A.IMTLG(), AlignedMTL=A.AlignedMTL(),
                      DualProj=A.DualProj(), CAGrad=A.CAGrad(c=0.4))[method]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        expected = aggregator(jac)
    # ours: the Gramian of the same losses from autograd, then the rule
    losses = list(net.losses(z1, z2))
    gramian = representation_gramian(losses, [z1, z2])
    tasks = ('a', 'b', 'c')
    rule = build_rule(dict(type=method, tasks=tasks))
    with mock.patch('mmdet_alwa.weighting.pcgrad.iteration_seed',
                    return_value=0):
        w = rule.prepare({t: float(v.detach()) for t, v in zip(tasks, losses)},
                         gramian=gramian)
    ours = torch.tensor([float(w[t]) for t in tasks],
                        dtype=torch.float64) @ jac
    assert (ours - expected).norm() <= 1e-5 * jac.norm(dim=1).max()


def test_representation_gramian_by_hand():
    z1 = torch.tensor([1.0, 2.0], requires_grad=True)
    z2 = torch.tensor([3.0], requires_grad=True)
    # L1 = 2 z1[0] + z2: g1 = (2, 0 | 1); L2 = z1[1]^2: g2 = (0, 4 | 0)
    l1 = 2 * z1[0] + z2[0]
    l2 = z1[1] ** 2
    g = representation_gramian([l1, l2, None], [z1, z2])
    assert g.tolist() == [[5, 0, 0], [0, 16, 0], [0, 0, 0]]
    # a loss scale (AMP) multiplies before the gradient and divides after
    scaled = representation_gramian([l1, l2, None], [z1, z2],
                                    scale=torch.tensor(1024.0))
    assert scaled.tolist() == g.tolist()
    # the graph is kept for the iteration's backward
    (l1 + l2).backward()
    assert z1.grad.tolist() == [2, 4]


def test_representation_gramian_needs_grad():
    with pytest.raises(ValueError, match='requires grad'):
        representation_gramian([torch.tensor(1.0)], [torch.zeros(2)])


def test_gramian_stats_by_hand():
    g = torch.tensor([[4., 2., 0.], [2., 1., 0.], [0., 0., 0.]])
    # diagonal; cos(1, 2) = 2 / (2 * 1); a zero gradient has cosine 0
    assert gramian_stats(g).tolist() == [4, 1, 0, 1, 0, 0]


def test_interval_keeps_the_last_weights():
    rule = MGDA(interval=2)
    g = torch.tensor([[1., 0.], [0., 4.]])
    assert rule.wants_gramian()
    w = rule.prepare(dict(cls=1.0, reg=1.0), gramian=g)
    assert [float(w['cls']), float(w['reg'])] == pytest.approx([0.8, 0.2])
    rule.step(dict(cls=1.0, reg=1.0))
    assert not rule.wants_gramian()
    # no Gramian: the last weights
    w = rule.prepare(dict(cls=1.0, reg=1.0))
    assert [float(w['cls']), float(w['reg'])] == pytest.approx([0.8, 0.2])
    rule.step(dict(cls=1.0, reg=1.0))
    assert rule.wants_gramian()


@pytest.mark.parametrize('bad', ['gramian', 'loss'])
def test_nonfinite_falls_back_to_the_last_weights(bad):
    rule = UPGrad()
    rule.prepare(dict(cls=1.0, reg=1.0), gramian=torch.tensor(
        [[1., 0.], [0., 4.]]))
    rule.step(dict(cls=1.0, reg=1.0))
    before = rule.weights
    g = torch.tensor([[math.nan, 0.], [0., 4.]]) if bad == 'gramian' \
        else torch.tensor([[1., 0.], [0., 1.]])
    losses = dict(cls=math.inf if bad == 'loss' else 1.0, reg=1.0)
    rule.prepare(losses, gramian=g)
    rule.step(losses)
    assert rule.weights == before
    assert rule.num_fallbacks == 1
    assert all(math.isfinite(v) for v in rule.log_scalars().values()
               if not isinstance(v, str))


def test_initial_weights_are_plain_mmdet():
    assert MGDA().weights == dict(cls=1.0, reg=1.0)


def test_state_round_trip():
    rule = MGDA(tasks=('a', 'b'))
    rule.prepare(dict(a=1.0, b=1.0), gramian=torch.tensor(
        [[1., 0.], [0., 4.]]))
    rule.step(dict(a=1.0, b=1.0))
    scalars = rule.log_scalars()
    assert scalars['sqnorm_a'] == 1 and scalars['sqnorm_b'] == 4
    assert scalars['cos_a_b'] == 0
    other = MGDA(tasks=('a', 'b'))
    other.load_state_dict(rule.state_dict())
    assert other.weights == pytest.approx(rule.weights)
    assert other.log_scalars() == pytest.approx(scalars)
    assert other.wants_gramian() == rule.wants_gramian()


def test_pcgrad_leaves_the_global_rng_alone_and_is_reproducible():
    g = torch.tensor([[1., -0.5, -0.2], [-0.5, 1., -0.3], [-0.2, -0.3, 1.]])
    tasks = ('a', 'b', 'c')
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = PCGrad(tasks=tasks, seed=1).prepare(
        {t: 1.0 for t in tasks}, gramian=g)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = PCGrad(tasks=tasks, seed=1).prepare(
        {t: 1.0 for t in tasks}, gramian=g)
    assert {t: float(v) for t, v in first.items()} == \
        {t: float(v) for t, v in again.items()}


@pytest.mark.parametrize('cfg,match', [
    (dict(type='UPGrad', pref_vector=[1.0]), 'pref_vector'),
    (dict(type='AlignedMTL', scale_mode='max'), 'scale_mode'),
    (dict(type='CAGrad', c=-1.0), 'c'),
    (dict(type='MGDA', interval=0), 'interval'),
    (dict(type='PCGrad', seed=-1), 'seed'),
])
def test_bad_arguments(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_rule(cfg)


def test_gramian_of_wrong_shape():
    with pytest.raises(ValueError, match=r'shape \(2, 2\)'):
        MGDA().prepare(dict(cls=1.0, reg=1.0), gramian=torch.eye(3))


@pytest.mark.parametrize('method,extra', [('UPGrad', 'quadprog'),
                                          ('DualProj', 'quadprog'),
                                          ('CAGrad', 'cagrad')])
def test_missing_extra_names_it(method, extra):
    weighting = dict(UPGrad='UPGradWeighting', DualProj='DualProjWeighting',
                     CAGrad='CAGradWeighting')[method]
    module = f'mmdet_alwa.weighting.{method.lower()}.{weighting}'
    error = ImportError('QuadprogProjector requires quadprog: pip install '
                        '"torchjd[quadprog_projector]"')
    with mock.patch(module, side_effect=error):
        with pytest.raises(ImportError,
                           match=rf'mmdet_alwa\[{extra}\]'):
            build_rule(dict(type=method))


def test_every_method_is_a_gramian_weighting():
    for method in METHODS:
        assert issubclass(type(build_rule(dict(type=method))),
                          GramianWeighting)
    assert CAGrad().c == 0.4
