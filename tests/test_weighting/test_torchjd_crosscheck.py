"""Our DWA and uncertainty weighting against TorchJD's ``DWA`` and ``UW``
(another well-kept implementation of the same papers) on the same loss
streams.

Conventions (docs/balancers.md, "TorchJD"):

- DWA: TorchJD averages over an *epoch* and is told when one ends
  (``step()``); ours closes a window every ``interval`` iterations. With a
  window of ``interval`` batches the two agree: both use
  K * softmax(r / T) of the ratio of the last two window means, and unit
  weights during the first two windows. Ours forms the ratio in log space
  with a floor and a cap (overflow guard) and drops non-finite losses from
  a window's mean; on a finite stream the weights are equal to rounding.
- Uncertainty weighting: both are Kendall et al.'s log-variance form with
  1/2 on every task, sum_k (e^{-s_k} L_k + s_k) / 2, with s = 0 initially
  (LibMTL starts at -0.5); the total loss and its gradients in the losses
  and in s are equal. TorchJD's IMTLL is 2 UW at -s (our IMTL_L).
"""
import numpy as np
import pytest
import torch
from torchjd.scalarization import DWA as TorchJDDWA
from torchjd.scalarization import UW

from mmdet_alwa.weighting import DWA, UncertaintyWeighting


@pytest.mark.parametrize('temperature', [2.0, 0.5])
def test_dwa_matches_torchjd_dwa(temperature):
    rng = np.random.default_rng(0)
    interval, windows = 4, 6
    stream = rng.uniform(0.2, 3.0, size=(interval * windows, 3))
    ours = DWA(tasks=('a', 'b', 'c'), interval=interval,
               temperature=temperature)
    theirs = TorchJDDWA(temperature=temperature)
    for i, row in enumerate(stream):
        losses = torch.tensor(row, dtype=torch.float64, requires_grad=True)
        # TorchJD's weights are the gradient of its scalarization
        weights, = torch.autograd.grad(theirs(losses), losses)
        assert list(ours.weights.values()) == pytest.approx(
            weights.tolist(), rel=1e-12)
        ours.step(dict(zip(('a', 'b', 'c'), row)))
        if (i + 1) % interval == 0:
            theirs.step()  # TorchJD's end of an "epoch"
    assert ours.num_windows == windows
    assert list(ours.weights.values()) != pytest.approx([1.0] * 3)


def test_uncertainty_matches_torchjd_uw():
    ours = UncertaintyWeighting(tasks=('cls', 'reg'))
    theirs = UW(2)
    s = torch.tensor([0.4, -1.3])
    with torch.no_grad():
        ours.log_vars.copy_(s)
        theirs.log_var.copy_(s)
    losses = torch.tensor([0.7, 2.5], requires_grad=True)
    total = sum(ours.weight_loss(t, losses[i])
                for i, t in enumerate(ours.tasks)) + ours.regularizer()
    direct = theirs(losses)
    torch.testing.assert_close(total, direct)
    g_ours = torch.autograd.grad(total, [losses, ours.log_vars])
    g_theirs = torch.autograd.grad(direct, [losses, theirs.log_var])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b)
    # the reported weights are UW's factors e^{-s} / 2
    assert list(ours.weights.values()) == pytest.approx(
        (0.5 * torch.exp(-s)).tolist(), rel=1e-6)
