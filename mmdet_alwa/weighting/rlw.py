"""Random Loss Weighting (RLW).

B. Lin, F. Ye, Y. Zhang, I. W. Tsang, "Reasonable Effectiveness of Random
Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022,
arXiv:2111.10603, Algorithm 2.
"""
from typing import Any, Dict, Mapping, Sequence

import torch
from torchjd.scalarization import Random

from .registry import register_rule
from .scalarized import ScalarizerWeighting, iteration_seed
from .validation import check_int

__all__ = ['RLW']


@register_rule
class RLW(ScalarizerWeighting):
    r"""RLW: new random weights at every iteration.

    At iteration :math:`t`

    .. math::

        \tilde\lambda(t) \sim \mathcal N(0, I_K), \qquad
        w(t) = c\,\mathrm{softmax}(\tilde\lambda(t))

    (the paper's Algorithm 2 with the normal distribution; the weights sum
    to :math:`c`, 1 by default; ``scale=K`` gives the sum of plain mmdet's
    unit weights). The draw is TorchJD's ``Random`` scalarizer, whose
    gradient is :math:`w`, made under ``torch.random.fork_rng`` with the
    generator of the losses' device seeded by a hash of :math:`(\text{seed},
    t)` (:meth:`draw_seed`): every
    DDP rank draws the same weights without a collective, the global random
    state is left as it was, and a resumed run (``num_steps`` is in the
    state) continues the same stream. A CPU and a CUDA run draw different
    streams (different generators). The weights do not depend on the
    losses; an iteration with a non-finite loss keeps the previous weights
    (as every :class:`ScalarizerWeighting`).

    Shapes: the weights ``(K,)``; the state is python numbers.

    Example::

        >>> rule = RLW(tasks=('cls', 'reg'), seed=0)
        >>> w = rule.prepare({'cls': 1.0, 'reg': 2.0})
        >>> round(w['cls'] + w['reg'], 12)
        1.0

    Args:
        tasks: names of the balanced losses.
        seed (int): the stream's seed, in ``[0, 2**31)``. Default 0.
        scale (float): :math:`c`. Default 1.
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'), seed: int = 0,
                 scale: float = 1.0) -> None:
        super().__init__(tasks, scale)
        self.seed = check_int('seed', seed, minimum=0)
        if seed >= 2**31:
            raise ValueError(f'seed must be < 2**31, got {seed!r}')
        self.scalarizer = Random()
        self._last_values()

    def draw_seed(self, iteration: int) -> int:
        """The generator seed of ``iteration`` (:func:`iteration_seed`)."""
        return iteration_seed(self.seed, iteration)

    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        seed = self.draw_seed(self.num_steps)
        device = losses.device
        if device.type == 'cpu':
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                return self.scalarizer(losses)
        if device.type != 'cuda':
            raise ValueError(f'RLW draws on the CPU or a CUDA device, got '
                             f'losses on {device}')
        index = torch.cuda.current_device() if device.index is None \
            else device.index
        with torch.random.fork_rng(devices=[index], device_type='cuda'):
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
            return self.scalarizer(losses)

    def _extra_state(self) -> Dict[str, Any]:
        return dict(super()._extra_state(), seed=self.seed)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        if int(state['seed']) != self.seed:
            raise ValueError(f'RLW: the state is of seed {state["seed"]}, '
                             f'this rule has seed {self.seed}')
        super()._load_extra_state(state)
