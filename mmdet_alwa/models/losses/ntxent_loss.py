"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR.

References:
    T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
    Contrastive Learning of Visual Representations", ICML 2020 (SimCLR),
    arXiv:2002.05709, Eq. 1 and Alg. 1.
    L. Briody, G. K. Aygen, "Simple and Robust Multi-Label Object Detection
    in Remote-Sensing Images via Self-Supervised Contrastive Learning"
    (Brown University), Sec. 2.3: SimCLR on remote-sensing images with
    tau = 0.5.

For a batch of k images with two views each (2k projections z), the loss of
the positive pair (i, j) is::

    l(i, j) = -log( exp(sim(z_i, z_j) / tau)
                    / sum_{t=1..2k, t != i} exp(sim(z_i, z_t) / tau) )

with sim the cosine similarity, and the batch loss is the mean of l over all
2k ordered positive pairs, i.e. l(i, j) and l(j, i) for each image.

Under DDP the negatives of every rank are gathered (``gather_with_grad``,
which pads to the largest rank batch, so the per-rank batches n_r may
differ, e.g. a last batch without ``drop_last``): each rank scores its own
2n_r anchors against all 2N projections (N = sum_r n_r). DDP *averages* the
rank gradients with equal weights, so the mean over a rank's own anchors
would give a rank with 2 images the same say as one with 6. Each rank therefore returns
``W / (2N) * sum of its anchor losses`` (W ranks), whose DDP average is the
gradient of the global mean, and reports the global mean itself (all-reduced)
as the value: loss and gradients equal one process on the concatenated
batch for equal and unequal batches alike. Without gathering
(``gather_distributed=False``) each rank's loss is its local mean with local
negatives only.
"""
import math
from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_alwa.weighting.validation import check_positive, check_range


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in forward; all_reduce(SUM) of the gradient in backward.

    Every rank's loss depends on every rank's projections, so the gradient of
    this rank's slice is the sum over ranks of the gradients flowing into it.
    Returning only the local ``grad[rank]`` (the old GatherLayer pattern of
    mmpretrain / lightly before issue #1528) drops the terms coming from the
    other ranks' losses.
    """

    @staticmethod
    def forward(ctx, x: Tensor, sizes: List[int]) -> Tensor:
        # all_gather needs equal shapes: pad to the largest rank batch
        padded = x.new_zeros((max(sizes), ) + x.shape[1:])
        padded[:x.shape[0]] = x
        out = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(out, padded)
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([o[:s] for o, s in zip(out, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(x: Tensor) -> Tuple[Tensor, int]:
    """Concatenate ``x`` of shape (N_r, ...) over all ranks, differentiably.

    Returns:
        ``(all_x, offset)``: ``all_x`` of shape (sum_r N_r, ...) in rank order
        and the row at which this rank's ``x`` starts in it. Without a process
        group of more than one rank: ``(x, 0)``.
    """
    if _world_size() == 1:
        return x, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device)
             for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    sizes = [int(s) for s in sizes]
    return _GatherWithGrad.apply(x.contiguous(), sizes), \
        sum(sizes[:dist.get_rank()])


@MODELS.register_module()
class NTXentLoss(nn.Module):
    """NT-Xent loss of SimCLR (see the module docstring for the equation).

    Args:
        temperature (float): tau > 0; Briody & Aygen use 0.5.
        loss_weight (float): factor on the loss, >= 0.
        gather_distributed (bool): under DDP, use the projections of all
            ranks as negatives (gradients sum-reduced across ranks).

    Shapes:
        z1, z2: (n, D) projections of the first and second view of the same
        n images (row i of z1 and row i of z2 form a positive pair).
        Output: scalar, the mean of l over the 2n anchors; under DDP with
        gathering, the mean over the 2N anchors of all ranks (see the module
        docstring for the gradient weighting when the n_r differ).
    """

    def __init__(self,
                 temperature: float = 0.5,
                 loss_weight: float = 1.0,
                 gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = check_positive('temperature', temperature)
        self.loss_weight = check_range('loss_weight', loss_weight, 0,
                                       math.inf, high_inclusive=False)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] == 0:
            raise ValueError('z1 and z2 must both be non-empty (n, D) '
                             f'tensors, got {tuple(z1.shape)} and '
                             f'{tuple(z2.shape)}')
        n = z1.shape[0]
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        world_size = _world_size() if self.gather_distributed else 1
        if world_size > 1:
            both, offset = gather_with_grad(torch.cat([z1, z2], dim=1))
            k1, k2 = both.chunk(2, dim=1)
        else:
            (k1, k2), offset = (z1, z2), 0
        total = k1.shape[0]
        anchors = torch.cat([z1, z2])  # (2n, D)
        keys = torch.cat([k1, k2])  # (2N, D), N = images on all ranks
        logits = anchors @ keys.t() / self.temperature  # (2n, 2N)
        rows = torch.arange(n, device=z1.device)
        own = torch.cat([rows + offset, rows + offset + total])
        positive = torch.cat([rows + offset + total, rows + offset])
        # t != i in the denominator: drop each anchor's similarity to itself
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(2 * n, device=z1.device), own] = True
        logits = logits.masked_fill(self_mask, float('-inf'))
        loss_sum = F.cross_entropy(logits, positive, reduction='sum')
        if world_size == 1:  # one process, or no gathering
            return self.loss_weight * loss_sum / (2 * n)
        # DDP averages gradients over ranks: weight this rank's anchors by
        # W / (2N) so that the average is the gradient of the global mean
        weighted = loss_sum * world_size / (2 * total)
        global_mean = loss_sum.detach().clone()
        dist.all_reduce(global_mean, op=dist.ReduceOp.SUM)
        global_mean /= 2 * total
        # value: the global mean on every rank; gradient: that of weighted
        loss = weighted + (global_mean - weighted).detach()
        return self.loss_weight * loss
