import math

import pytest
import torch
from _helpers import dist_run
from torch import nn

from mmdet_alwa.models.losses.ntxent_loss import NTXentLoss, gather_with_grad


def paper_ntxent(z1, z2, tau):
    """SimCLR's loss transcribed literally (Chen et al. 2020, Alg. 1):
    views 2k-1 and 2k of image k form the pair, l(i,j) = -log(exp(s_ij/tau) /
    sum_{t != i} exp(s_it/tau)), L = 1/(2N) sum_k [l(2k-1,2k) + l(2k,2k-1)]."""
    z = []
    for a, b in zip(z1, z2):
        z += [a, b]

    def sim(u, v):
        return torch.dot(u, v) / (u.norm() * v.norm())

    def ell(i, j):
        den = sum(torch.exp(sim(z[i], z[t]) / tau)
                  for t in range(len(z)) if t != i)
        return -torch.log(torch.exp(sim(z[i], z[j]) / tau) / den)

    n = len(z1)
    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k)
               for k in range(n)) / (2 * n)


@pytest.mark.parametrize('tau', [0.5, 0.1, 2.0])
def test_matches_paper_transcription(tau):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(5, 8, generator=g, dtype=torch.float64)
    z2 = torch.randn(5, 8, generator=g, dtype=torch.float64)
    ours = NTXentLoss(temperature=tau)(z1, z2)
    torch.testing.assert_close(ours, paper_ntxent(z1, z2, tau))


def test_gradient_matches_transcription():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(4, 6, generator=g, dtype=torch.float64,
                     requires_grad=True)
    z2 = torch.randn(4, 6, generator=g, dtype=torch.float64,
                     requires_grad=True)
    ga = torch.autograd.grad(NTXentLoss()(z1, z2), (z1, z2))
    gb = torch.autograd.grad(paper_ntxent(z1, z2, 0.5), (z1, z2))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_perfect_pairs_reach_lower_bound():
    # positives identical, negatives orthogonal: l = -log(e^{1/t} /
    # (e^{1/t} + 2(n-1)))
    n, tau = 3, 0.5
    z = torch.eye(n)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * (n - 1)))
    assert NTXentLoss(tau)(z, z).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('kwargs', [dict(temperature=0), dict(temperature=-1),
                                    dict(temperature='0.5'),
                                    dict(loss_weight=-1.0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        NTXentLoss(**kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match='z1 and z2'):
        NTXentLoss()(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='z1 and z2'):
        NTXentLoss()(torch.zeros(0, 4), torch.zeros(0, 4))


def test_registered():
    from mmdet.registry import MODELS
    loss = MODELS.build(dict(type='NTXentLoss', temperature=0.2))
    assert isinstance(loss, NTXentLoss) and loss.temperature == 0.2


# ---- DDP: 2 gloo ranks against one process on the concatenated batch -----

DIM_IN, DIM_OUT = 5, 4


def _data(total):
    g = torch.Generator().manual_seed(7)
    x1 = torch.randn(total, DIM_IN, generator=g, dtype=torch.float64)
    x2 = torch.randn(total, DIM_IN, generator=g, dtype=torch.float64)
    return x1, x2


def _model():
    torch.manual_seed(3)
    return nn.Linear(DIM_IN, DIM_OUT).double()


def _ddp_rank(rank, world_size, sizes):
    # a forked child must not enter the OpenMP pool its parent already used
    torch.set_num_threads(1)
    x1, x2 = _data(sum(sizes))
    sl = slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
    model = nn.parallel.DistributedDataParallel(_model())
    loss = NTXentLoss(0.5)(model(x1[sl]), model(x2[sl]))
    loss.backward()
    # the gather's backward sums the gradient over ranks (the old
    # GatherLayer returned only this rank's slice of it)
    z1 = x1[sl].clone().requires_grad_()
    all_z, off = gather_with_grad(z1)
    assert off == sl.start and all_z.shape[0] == sum(sizes)
    torch.testing.assert_close(all_z.detach(), x1)
    (all_z ** 2).sum().backward()
    return (loss.item(), model.module.weight.grad.clone(),
            model.module.bias.grad.clone(), z1.grad.clone())


@pytest.mark.parametrize('sizes', [(3, 3), (2, 6), (6, 2)],
                         ids=['equal', 'unequal_2_6', 'unequal_6_2'])
def test_ddp_matches_single_process(sizes):
    results = dist_run(_ddp_rank, 2, sizes)
    x1, x2 = _data(sum(sizes))
    model = _model()
    # the oracle: the paper's loop on the concatenated batch, one process
    loss = paper_ntxent(model(x1), model(x2), 0.5)
    loss.backward()
    for rank, (rank_loss, w_grad, b_grad, z_grad) in enumerate(results):
        # every rank reports the loss of the concatenated batch
        assert rank_loss == pytest.approx(loss.item(), rel=1e-10)
        # DDP averages the rank gradients: equal to the one-process gradient
        torch.testing.assert_close(w_grad, model.weight.grad)
        torch.testing.assert_close(b_grad, model.bias.grad)
        # d/dz of sum over ranks of sum(all_z^2): 2 ranks * 2 z
        sl = slice(sum(sizes[:rank]), sum(sizes[:rank + 1]))
        torch.testing.assert_close(z_grad, 2 * 2 * x1[sl])
