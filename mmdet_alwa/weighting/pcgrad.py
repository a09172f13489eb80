"""Projecting Conflicting Gradients (PCGrad).

T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient
Surgery for Multi-Task Learning", NeurIPS 2020, Algorithm 1.
"""
from typing import Sequence

import torch
from torchjd.aggregation import PCGradWeighting

from .gramian import GramianWeighting
from .registry import register_rule
from .scalarized import iteration_seed
from .validation import check_int

__all__ = ['PCGrad']


@register_rule
class PCGrad(GramianWeighting):
    r"""PCGrad: each task gradient, projected off the gradients it conflicts
    with, summed.

    For each :math:`i`, in the paper's random order of the other tasks
    :math:`j`: if :math:`g_i^{PC} \cdot g_j < 0`, then :math:`g_i^{PC}
    \leftarrow g_i^{PC} - \frac{g_i^{PC} \cdot g_j}{\|g_j\|^2} g_j`; the
    update is :math:`\sum_i g_i^{PC} = J^\top w`. TorchJD's
    ``PCGradWeighting`` computes :math:`w` from :math:`G = J J^\top` alone
    (``(K, K)``), on the CPU, in a random order per task drawn with
    ``torch.randperm``. That draw is made here under
    ``torch.random.fork_rng`` with the CPU generator seeded by
    :func:`~.scalarized.iteration_seed` of ``(seed, iteration)``: every DDP
    rank projects in the same order, a resumed run continues the same
    stream, and the training's own random state is left as it was. For
    :math:`K = 2` the order does not matter.

    Example (two opposed gradients of norms 2 and 1, :math:`G` =
    [[4, -2], [-2, 1]]: :math:`g_1^{PC} = g_1 + 2 g_2` and
    :math:`g_2^{PC} = g_2 + \tfrac12 g_1`, whose sum is
    :math:`1.5\, g_1 + 3\, g_2`)::

        >>> G = torch.tensor([[4., -2.], [-2., 1.]])
        >>> w = PCGrad().prepare({'cls': 1.0, 'reg': 1.0}, gramian=G)
        >>> [round(float(w[t]), 4) for t in ('cls', 'reg')]
        [1.5, 3.0]

    Args:
        tasks: names of the balanced losses.
        interval (int): a new Gramian every ``interval`` iterations.
        seed (int): the seed of the projection orders, in ``[0, 2**31)``.
            Default 0.
        scale (float): multiplies every weight. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1, seed: int = 0,
                 scale: float = 1.0) -> None:
        self.seed = check_int('seed', seed, minimum=0)
        if seed >= 2**31:
            raise ValueError(f'seed must be < 2**31, got {seed!r}')
        super().__init__(tasks, interval, scale)

    def _weights_at(self, losses: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(
                iteration_seed(self.seed, self.num_steps))
            return super()._weights_at(losses)

    def build_weighting(self):
        return PCGradWeighting()
