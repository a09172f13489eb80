"""MATL triplet losses against a loop-by-loop transcription of Eq. 1-5."""
import itertools
import math

import pytest
import torch

from mmdet_alwa.models.losses.triplet_loss import (
    MultiAnnotationTripletLoss, batch_all_triplet_loss,
    batch_hard_triplet_loss, pairwise_distances)

# Every reference here computes its own distances (math.dist, or _dist on
# tensors), one triplet or anchor at a time.

EMB = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0],
                    [1.0, 1.0], [0.5, 0.2]])
CLS = torch.tensor([0, 0, 1, 1, 2, 0])
BOX = torch.tensor([1, 0, 1, 0, 0, 1])


def _d(i, j):
    return math.dist(EMB[i].tolist(), EMB[j].tolist())


def _manual_batch_all(labels, m):
    losses = []
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] == labels[p] and labels[a] != labels[n]:
            losses.append(max(_d(a, p) - _d(a, n) + m, 0.0))
    pos = [v for v in losses if v > 1e-16]
    return (sum(pos) / len(pos) if pos else 0.0), len(pos) / len(losses)


def _manual_batch_hard(labels, m):
    losses = []
    for a in range(len(labels)):
        ps = [_d(a, p) for p in range(len(labels))
              if p != a and labels[p] == labels[a]]
        ns = [_d(a, n) for n in range(len(labels)) if labels[n] != labels[a]]
        if ps and ns:
            losses.append(max(max(ps) - min(ns) + m, 0.0))
    return sum(losses) / len(losses)


def test_pairwise_distances():
    expect = torch.cdist(EMB, EMB)
    assert torch.allclose(pairwise_distances(EMB), expect, atol=1e-6)
    assert (pairwise_distances(EMB).diagonal() == 0).all()


@pytest.mark.parametrize('labels', [CLS, BOX])
@pytest.mark.parametrize('margin', [0.1, 1.0])
def test_batch_all_matches_manual(labels, margin):
    loss, frac = batch_all_triplet_loss(EMB, labels, margin)
    want, want_frac = _manual_batch_all(labels.tolist(), margin)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert frac.item() == pytest.approx(want_frac, rel=1e-6)


@pytest.mark.parametrize('labels', [CLS, BOX])
def test_batch_hard_matches_manual(labels):
    loss, _ = batch_hard_triplet_loss(EMB, labels, 0.5)
    assert loss.item() == pytest.approx(
        _manual_batch_hard(labels.tolist(), 0.5), rel=1e-5)


def test_matl_combination_and_clt_baseline():
    matl = MultiAnnotationTripletLoss(box_weight=0.25, margin=0.5,
                                      loss_weight=2.0)
    want = 2.0 * (0.75 * _manual_batch_all(CLS.tolist(), 0.5)[0] +
                  0.25 * _manual_batch_all(BOX.tolist(), 0.5)[0])
    assert matl(EMB, CLS, BOX).item() == pytest.approx(want, rel=1e-5)
    assert set(matl.last_positive_fraction) == {'cls', 'box'}
    cltl = MultiAnnotationTripletLoss(box_weight=0, margin=0.5)
    assert cltl(EMB, CLS).item() == pytest.approx(
        _manual_batch_all(CLS.tolist(), 0.5)[0], rel=1e-5)
    with pytest.raises(ValueError, match='box_labels'):
        matl(EMB, CLS)


@pytest.mark.parametrize('fn', [batch_all_triplet_loss,
                                batch_hard_triplet_loss])
@pytest.mark.parametrize('emb,labels', [
    (torch.randn(5, 4), torch.zeros(5, dtype=torch.long)),  # one class
    (torch.randn(2, 4), torch.tensor([0, 1])),  # too few samples
    (torch.randn(0, 4), torch.zeros(0, dtype=torch.long)),  # no RoI
    (torch.randn(3, 4), torch.tensor([0, 1, 2])),  # no positive pair
    (torch.ones(4, 4), torch.tensor([0, 0, 1, 1])),  # identical embeddings
])
def test_no_valid_triplet_gives_zero_with_gradient(fn, emb, labels):
    emb = emb.requires_grad_()
    loss, _ = fn(emb, labels, 0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    if not (emb.size(0) == 4 and labels.tolist() == [0, 0, 1, 1]):
        assert loss.item() == 0
    else:  # identical embeddings: every triplet has loss = margin
        assert loss.item() == pytest.approx(0.1)


def test_easy_triplets_give_zero():
    emb = torch.tensor([[0.0], [0.01], [5.0], [5.01]], requires_grad=True)
    loss, frac = batch_all_triplet_loss(emb, torch.tensor([0, 0, 1, 1]), 0.1)
    assert loss.item() == 0 and frac.item() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match='box_weight'):
        MultiAnnotationTripletLoss(box_weight=1.5)
    with pytest.raises(ValueError, match='margin'):
        MultiAnnotationTripletLoss(margin=0)
    with pytest.raises(ValueError, match='mining'):
        MultiAnnotationTripletLoss(mining='semi_hard')
    with pytest.raises(ValueError, match='labels'):
        batch_all_triplet_loss(EMB, CLS[:3], 0.1)


def _dist(u, v):
    """Euclidean distance of two vectors, written out (not the code under
    test's ``pairwise_distances``)."""
    return ((u - v) ** 2).sum().sqrt()


def _loop_batch_all(emb, labels, margin):
    """Eq. 1 over every valid (a, p, n), one triplet at a time; the mean over
    the triplets with a positive loss, as the authors' code."""
    losses = [
        _dist(emb[a], emb[p]) - _dist(emb[a], emb[n]) + margin
        for a, p, n in itertools.permutations(range(len(labels)), 3)
        if labels[a] == labels[p] and labels[a] != labels[n]
    ]
    pos = [v for v in losses if v > 1e-16]
    return sum(pos) / len(pos)


def _loop_batch_hard(emb, labels, margin):
    """Hermans et al.: per anchor the farthest positive, nearest negative."""
    losses = []
    for a in range(len(labels)):
        ps = [_dist(emb[a], emb[p]) for p in range(len(labels))
              if p != a and labels[p] == labels[a]]
        ns = [_dist(emb[a], emb[n]) for n in range(len(labels))
              if labels[n] != labels[a]]
        if ps and ns:
            losses.append((max(ps) - min(ns) + margin).clamp(min=0))
    return sum(losses) / len(losses)


@pytest.mark.parametrize('fn,loop,margin', [
    (batch_all_triplet_loss, _loop_batch_all, 0.3),
    (batch_hard_triplet_loss, _loop_batch_hard, 0.3),
    (batch_hard_triplet_loss, _loop_batch_hard, 1.5),  # every anchor active
])
def test_values_and_gradients_match_a_triplet_loop(fn, loop, margin):
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(14, 6, generator=gen),
                                        dim=1)
    labels = torch.randint(0, 3, (14, ), generator=gen).tolist()
    a = emb.clone().requires_grad_()
    b = emb.clone().requires_grad_()
    loss_a, _ = fn(a, torch.tensor(labels), margin)
    loss_b = loop(b, labels, margin)
    loss_a.backward()
    loss_b.backward()
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-5)
    assert torch.allclose(a.grad, b.grad, atol=1e-6)
    assert a.grad.abs().sum() > 0


@pytest.mark.parametrize('mining', ['batch_all', 'batch_hard'])
def test_half_precision_autocast_stays_finite(mining):
    emb = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [0.6, 0.8]])
    lin = torch.nn.Linear(2, 4)
    loss_fn = MultiAnnotationTripletLoss(mining=mining)
    with torch.autocast('cpu', dtype=torch.float16):
        out = lin(emb)  # duplicate rows: zero distances
        loss = loss_fn(out, torch.tensor([0, 0, 1, 1]),
                       torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(lin.weight.grad).all()
