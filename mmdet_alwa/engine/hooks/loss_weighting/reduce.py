"""The all-reduce of a rule's per-iteration inputs across DDP ranks.

Every rank's rule must see the same stream, so the raw losses and signals
are reduced before ``rule.step``: the mean over the ranks whose value is
finite (NaN where none is), and, per value, how many ranks' values were not
finite -- a NaN loss on one rank is counted by the rule although the mean
of the other ranks is finite. One ``all_reduce`` of one float64 tensor per
call; without a process group ``mmengine.dist`` makes it a no-op.
"""
import math
from typing import Any, List, NamedTuple, Sequence

import torch
from mmengine import dist

__all__ = ['Reduced', 'reduce_finite_mean']


class Reduced(NamedTuple):
    """``mean[i]``: mean of the finite rank values of ``values[i]`` (NaN if
    none); ``num_nonfinite[i]``: the number of ranks where it was not
    finite."""
    mean: List[float]
    num_nonfinite: List[int]


def reduce_finite_mean(values: Sequence[Any],
                       device: torch.device) -> Reduced:
    """Reduce python floats / 0-d tensors (one per rank) across ranks."""
    if not values:
        return Reduced([], [])
    data = torch.stack([
        torch.as_tensor(v, dtype=torch.float64, device=device).reshape(())
        for v in values])
    finite = torch.isfinite(data)
    stacked = torch.stack([torch.where(finite, data, 0.0),
                           finite.to(torch.float64),
                           (~finite).to(torch.float64)])
    dist.all_reduce(stacked, op='sum')
    total, count, bad = stacked.tolist()
    mean = [t / c if c > 0 else math.nan for t, c in zip(total, count)]
    return Reduced(mean, [int(b) for b in bad])
