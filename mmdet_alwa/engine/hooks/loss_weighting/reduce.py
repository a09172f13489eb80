"""The all-reduce of a rule's per-iteration inputs across DDP ranks.

Every rank's rule must see the same stream, so the raw losses and signals
are reduced before ``rule.step``: the mean over the ranks whose value is
finite (NaN where none is), and, per value, how many ranks' values were not
finite -- a NaN loss on one rank is counted by the rule although the mean
of the other ranks is finite. One ``all_reduce`` of one float64 tensor per
call; without a process group ``mmengine.dist`` makes it a no-op.

Device. The reduced tensor is built on ``device``, the model's device,
because the collective's backend requires it: NCCL reduces CUDA tensors
only, gloo CPU tensors (a CPU model is trained on gloo,
:func:`mmdet_alwa.utils.setup_cpu_distributed`). The values are 0-d tensors
already on that device (the raw losses, the providers' signals) or python
floats, which are written there with a fill (``torch.full``), not copied
from host memory (a blocking host-to-device copy would sync too).

Host reads. :func:`reduce_finite_mean` reads the reduced tensor once
(``tolist``), together with ``extra`` device tensors that are not reduced
(a rule's device state, :meth:`~mmdet_alwa.weighting.BaseWeighting.
device_state`): the one host read of an iteration of
:class:`~mmdet_alwa.engine.hooks.LossWeightingHook`. :func:`finite_mean`
gives the same means as 0-d device tensors without any read (the
same-iteration weights of Guided Loss).
"""
import math
from typing import Any, List, NamedTuple, Sequence, Tuple

import torch
from mmengine import dist

__all__ = ['Reduced', 'reduce_finite_mean', 'finite_mean']


class Reduced(NamedTuple):
    """``mean[i]``: mean of the finite rank values of ``values[i]`` (NaN if
    none); ``num_nonfinite[i]``: the number of ranks where it was not
    finite; ``extra``: the values of the ``extra`` tensors, flattened, as
    this rank holds them (not reduced)."""
    mean: List[float]
    num_nonfinite: List[int]
    extra: List[float] = []


def _as_device_values(values: Sequence[Any],
                      device: torch.device) -> torch.Tensor:
    """``values`` (0-d tensors, python numbers) as one float64 vector on
    ``device``, without a host-to-device copy of a python number."""
    if all(isinstance(v, torch.Tensor) and v.device == device
           and v.dtype == values[0].dtype and v.dim() == 0 for v in values):
        # the usual case (the losses, the signals): one stack, one cast
        return torch.stack([v.detach() for v in values]).to(torch.float64)
    return torch.stack([
        v.detach().to(device=device, dtype=torch.float64).reshape(())
        if isinstance(v, torch.Tensor) else
        torch.full((), float(v), dtype=torch.float64, device=device)
        for v in values])


def _all_reduce_finite(values: Sequence[Any],
                       device: torch.device) -> torch.Tensor:
    """(3, n) float64 on ``device``, summed over the ranks: the finite
    values (0 elsewhere), the number of ranks where each is finite, and
    where it is not. No host read."""
    data = _as_device_values(values, device)
    finite = torch.isfinite(data)
    stacked = torch.stack([torch.where(finite, data, 0.0),
                           finite.to(torch.float64),
                           (~finite).to(torch.float64)])
    # NCCL: ``stacked`` is a CUDA tensor (``device`` is the model's)
    dist.all_reduce(stacked, op='sum')
    return stacked


def finite_mean(values: Sequence[Any],
                device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """As :func:`reduce_finite_mean`, as device tensors and without a host
    read: ``(mean, num_nonfinite)``, float64 vectors on ``device``. The
    means are the very numbers :func:`reduce_finite_mean` gives (the same
    float64 sums and division)."""
    total, count, bad = _all_reduce_finite(values, device)
    mean = torch.where(count > 0, total / count, math.nan)
    return mean, bad


def reduce_finite_mean(values: Sequence[Any], device: torch.device,
                       extra: Sequence[torch.Tensor] = ()) -> Reduced:
    """Reduce python floats / 0-d tensors (one per rank) across ranks; read
    the result and ``extra`` (device tensors of any shape, not reduced) in
    one host transfer."""
    if not values and not extra:
        return Reduced([], [], [])
    n = len(values)
    parts = [_all_reduce_finite(values, device).reshape(-1)] if n else []
    parts += [t.detach().reshape(-1).to(device=device, dtype=torch.float64)
              for t in extra]
    flat = (torch.cat(parts) if len(parts) > 1 else parts[0]).tolist()
    # (the one host read)
    total, count, bad = flat[:n], flat[n:2 * n], flat[2 * n:3 * n]
    mean = [t / c if c > 0 else math.nan for t, c in zip(total, count)]
    return Reduced(mean, [int(b) for b in bad], flat[3 * n:])
