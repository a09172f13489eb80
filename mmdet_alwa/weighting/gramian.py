r"""Gradient aggregation at a shared representation, through TorchJD's
Gramian weightings.

A gradient-aggregation method (MGDA, PCGrad, UPGrad, ...) combines the
task gradients :math:`g_k = \nabla L_k` into one update
:math:`\sum_k w_k g_k`, with weights that depend only on the Gramian

.. math::

    G = J J^\top, \qquad G_{ij} = \langle g_i, g_j \rangle, \qquad
    J = \begin{bmatrix} g_1^\top \\ \vdots \\ g_K^\top \end{bmatrix}

TorchJD (``torchjd.aggregation.*Weighting``) implements each method as
such a *weighting*: ``w = weighting(G)``, shape ``(K, K) -> (K,)``.
Back-propagating :math:`\sum_k w_k L_k` once then gives exactly the
aggregated update :math:`J^\top w` (the weights are constants of the
iteration), so the methods need no change to mmdet's training step: the
glue (``LossWeightingHook``) multiplies each task's loss by :math:`w_k`, as
for every same-iteration rule.

Which gradients. As MGDA-UB (Sener & Koltun, NeurIPS 2018, Sec. 3.3),
:math:`g_k` is taken with respect to the shared representation :math:`Z`
(by default the neck's outputs, all FPN levels), not the shared parameters:
:math:`J = \partial L / \partial Z` costs one backward pass per task
through the heads only. The methods are defined on the parameters'
Jacobian; the representation Gramian approximates it (MGDA-UB bounds the
one by the other), docs/balancers.md, "Gradient aggregation".
:func:`representation_gramian` computes :math:`G` with
``torch.autograd.grad`` (pure torch).

Distributed training. DDP back-propagates the mean of the ranks' losses,
so the global Jacobian with respect to the global batch's representation
is :math:`\tfrac1W [J_1, \dots, J_W]` (the ranks' representations are
disjoint) and its Gramian is :math:`\tfrac1{W^2} \sum_r J_r J_r^\top`: the
glue all-reduces :math:`J_r J_r^\top` with a sum and divides by
:math:`W^2`, so every rank computes the same weights, those of the global
batch.

Interval. A new Gramian is formed every ``interval``-th iteration
(:meth:`GramianWeighting.wants_gramian`); in between, the last weights are
kept. A non-finite Gramian or weight (a NaN/inf loss, a float16 overflow)
keeps the last weights too, counted in ``num_fallbacks``, as does a zero
Gramian; initially every weight is 1 (plain mmdet's sum).

Scale. TorchJD's UPGrad, DualProj and CAGrad treat a Gramian whose trace
is below an absolute ``norm_eps`` (1e-4) as zero: UPGrad and DualProj then
return the mean's weights and CAGrad zero weights, whatever the gradients.
Gradients at a representation are far smaller than that (a mean loss over
an FPN's :math:`10^5`-:math:`10^6` elements: traces of :math:`10^{-9}` to
:math:`10^{-5}` in our detectors), so the rules hand TorchJD
:math:`G / \operatorname{tr} G`. Every method here is positively
homogeneous (its weights do not change when :math:`G` is scaled), so this
changes nothing but the threshold (a zero Gramian, when no gradient
reached the representation, falls back as above).

Host reads. The weights are computed on the Gramian's device; what TorchJD
does there is its own: UPGrad, DualProj and CAGrad solve a small problem on
the CPU (quadprog, cvxpy), which reads the :math:`K \times K` Gramian, and
MGDA / PCGrad branch on its entries. These methods therefore read the
device once more per Gramian (docs/balancers.md, "Host reads").
"""
import math
from abc import abstractmethod
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch

from .scalarized import ScalarizerWeighting, _on_device
from .validation import check_int

__all__ = ['GramianWeighting', 'representation_gramian', 'gramian_stats',
           'missing_extra_error', 'pref_vector']


def pref_vector(values: Optional[Sequence[float]], k: int
                ) -> Optional[torch.Tensor]:
    """A preference vector argument as TorchJD takes it: ``None`` (the
    method's default) or ``k`` finite positive numbers as a tensor."""
    if values is None:
        return None
    values = [float(v) for v in values] if isinstance(
        values, (list, tuple)) else None
    if values is None or len(values) != k or not all(
            math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f'pref_vector must be {k} finite positive numbers '
                         f'(one per task) or None')
    return torch.tensor(values)


def missing_extra_error(method: str, extra: str, error: Exception
                        ) -> ImportError:
    """The ``ImportError`` for a method whose TorchJD extra is missing,
    with the install line pip accepts (TorchJD 0.18 spells its extra
    ``quadprog_projector``, which pip does not match)."""
    return ImportError(
        f'{method} needs the optional solvers of TorchJD: pip install '
        f'"mmdet_alwa[{extra}]" (or "torchjd[{extra}]"); '
        f'TorchJD said: {error}')


def representation_gramian(losses: Sequence[Optional[torch.Tensor]],
                           representation: Sequence[torch.Tensor],
                           scale: Union[None, float, torch.Tensor] = None
                           ) -> torch.Tensor:
    r"""The Gramian of the task losses' Jacobian with respect to a shared
    representation, by ``torch.autograd.grad``.

    Args:
        losses: :math:`K` 0-d losses attached to the graph (``None``: the
            task did not run; its row of :math:`J` is zero).
        representation: the tensors :math:`Z_1, \dots, Z_R` (FPN levels, any
            shapes); a loss that does not depend on one has zero gradient
            there.
        scale: multiply every loss by ``scale`` before differentiating and
            divide :math:`G` by ``scale**2`` (a float16 loss scaler's scale,
            so that small gradients do not underflow). Default: none.

    Returns:
        :math:`G = J J^\top`, ``(K, K)`` float64 on the representation's
        device, :math:`J_{k} = \operatorname{vec}(\partial L_k /
        \partial Z_1, \dots, \partial L_k / \partial Z_R)`. The graph is kept
        (``retain_graph``) for the iteration's backward.

    Example::

        >>> z = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> representation_gramian([z[0] * 3, z[1] * 4], [z])
        tensor([[ 9.,  0.],
                [ 0., 16.]], dtype=torch.float64)
    """
    reps = [z for z in representation if z.requires_grad]
    if not reps:
        raise ValueError('representation_gramian: no tensor of the '
                         'representation requires grad')
    k = len(losses)
    device = reps[0].device
    rows: List[List[Optional[torch.Tensor]]] = []
    for loss in losses:
        if loss is None or not loss.requires_grad:
            rows.append([None] * len(reps))
            continue
        target = loss if scale is None else loss * scale
        rows.append(list(torch.autograd.grad(
            target, reps, retain_graph=True, allow_unused=True)))
    gramian = torch.zeros(k, k, dtype=torch.float64, device=device)
    for level, z in enumerate(reps):
        grads = [r[level] for r in rows]
        if all(g is None for g in grads):
            continue
        # float64: the methods' solvers (pseudo-inverses, eigenvalues, QPs)
        # are sensitive to a Gramian's rounding when gradients are
        # nearly collinear
        jac = torch.stack([
            torch.zeros(z.numel(), dtype=torch.float64, device=device)
            if g is None else g.reshape(-1).double() for g in grads])
        gramian += jac @ jac.T
    if scale is not None:
        scale = scale.detach().double() if isinstance(scale, torch.Tensor) \
            else float(scale)
        gramian = gramian / (scale * scale)
    return gramian


def gramian_stats(gramian: torch.Tensor) -> torch.Tensor:
    r"""The logged summary of a Gramian: its diagonal (the squared gradient
    norms :math:`\|g_k\|^2`) then the cosines :math:`G_{ij} /
    \sqrt{G_{ii} G_{jj}}` for :math:`i < j` (0 where a norm is 0); shape
    ``(K + K(K-1)/2,)``.

    Example::

        >>> gramian_stats(torch.tensor([[4., -2.], [-2., 1.]]))
        tensor([ 4.,  1., -1.])
    """
    diag = gramian.diagonal()
    norms = diag.clamp(min=0).sqrt()
    i, j = torch.triu_indices(len(diag), len(diag), offset=1)
    denom = norms[i] * norms[j]
    cos = torch.where(denom > 0, gramian[i, j] / denom.clamp(
        min=torch.finfo(denom.dtype).tiny), torch.zeros_like(denom))
    return torch.cat([diag, cos])


class GramianWeighting(ScalarizerWeighting):
    r"""Base of the gradient-aggregation rules: the weights are a TorchJD
    Gramian weighting of the task gradients at the shared representation
    (see the module docstring).

    Subclasses implement :meth:`build_weighting` (the TorchJD
    ``Weighting``). The glue calls :meth:`prepare` once every loss exists,
    with ``gramian`` when :meth:`wants_gramian` said so, and back-propagates
    :math:`\sum_k w_k L_k`; :meth:`step` follows after the iteration.

    Shapes: ``gramian`` ``(K, K)``, the weights ``(K,)``.

    Args:
        tasks: names of the balanced losses.
        interval (int): form a new Gramian every ``interval``-th iteration
            (the first included); keep the last weights in between.
            Default 1.
        scale (float): :math:`c`, multiplies every weight. Default 1 (the
            method as TorchJD defines it).
    """

    #: the glue must hand a Gramian to :meth:`prepare` (when
    #: :meth:`wants_gramian`)
    needs_gramian = True

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 interval: int = 1, scale: float = 1.0) -> None:
        super().__init__(tasks, scale)
        self.interval = check_int('interval', interval)
        self.weighting = self.build_weighting()
        self._gramian: Optional[torch.Tensor] = None
        self._stats: Optional[torch.Tensor] = None
        # the last Gramian's diagonal and cosines, as numbers (for logs)
        self.last_stats: List[float] = []

    @abstractmethod
    def build_weighting(self):
        """The TorchJD ``Weighting`` of the method (Gramian -> weights)."""

    def wants_gramian(self) -> bool:
        """Whether the coming iteration forms a new Gramian: the first and
        every ``interval``-th (``num_steps`` counts the finished ones)."""
        return self.num_steps % self.interval == 0

    def _last_values(self) -> List[float]:
        if not self._values:
            self._values = [1.0] * len(self.tasks)
        return self._values

    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f'{type(self).__name__} has no scalarizer: '
                                  f'its weights come from a Gramian')

    def prepare(self, raw_losses: Mapping[str, Union[float, torch.Tensor]],
                gramian: Optional[torch.Tensor] = None
                ) -> Dict[str, Union[float, torch.Tensor]]:
        """The weights of this iteration: TorchJD's weighting of
        ``gramian`` (``(K, K)``) if given, else the last weights; the last
        weights too when a loss, the Gramian or a weight is not finite."""
        if gramian is not None:
            k = len(self.tasks)
            if tuple(gramian.shape) != (k, k):
                raise ValueError(f'{type(self).__name__}.prepare: gramian '
                                 f'must have shape ({k}, {k}), got '
                                 f'{tuple(gramian.shape)}')
            self._gramian = gramian.detach().to(torch.float64)
            stats = gramian_stats(self._gramian)
            # a non-finite Gramian leaves the logged statistics as they were
            last = self.last_stats or [0.0] * stats.numel()
            self._stats = torch.where(
                torch.isfinite(self._gramian).all(), stats,
                _on_device(last, stats.device))
        try:
            return super().prepare(raw_losses)
        finally:
            self._gramian = None

    def _weights_at(self, losses: torch.Tensor) -> torch.Tensor:
        last = self._applied if self._applied is not None and \
            self._applied.device == losses.device else torch.tensor(
                self._last_values(), dtype=torch.float64,
                device=losses.device)
        gramian = self._gramian
        if gramian is None:
            return last
        gramian = gramian.to(losses.device)
        trace = gramian.diagonal().sum()
        usable = torch.isfinite(gramian).all() & (trace > 0)
        # TorchJD sees G / tr(G) (module docstring, "Scale"); its solvers
        # must not see NaN or a zero Gramian: the identity in their place,
        # whose weights the caller's finiteness test then discards
        safe = torch.where(
            usable, gramian / torch.where(usable, trace, 1.0),
            torch.eye(len(gramian), dtype=gramian.dtype,
                      device=gramian.device))
        weights = self.weighting(safe).to(torch.float64) * self.scale
        return torch.where(usable, weights, math.nan)

    def device_state(self) -> List[torch.Tensor]:
        state = super().device_state()
        if state and self._stats is not None:
            state.append(self._stats)
        return state

    def _set_extra_device_values(self, values: List[float]) -> None:
        if values:
            self.last_stats = list(values)
            self._stats = None

    @property
    def weights(self) -> Dict[str, float]:
        if self._fresh and self._stats is not None:
            self.last_stats = [float(v) for v in self._stats]
            self._stats = None
        return super().weights

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        k = len(self.tasks)
        if len(self.last_stats) == k + k * (k - 1) // 2:
            for task, value in zip(self.tasks, self.last_stats[:k]):
                scalars[f'sqnorm_{task}'] = value
            pairs = [(a, b) for i, a in enumerate(self.tasks)
                     for b in self.tasks[i + 1:]]
            for (a, b), value in zip(pairs, self.last_stats[k:]):
                scalars[f'cos_{a}_{b}'] = value
        return scalars

    def _extra_state(self) -> Dict:
        state = super()._extra_state()
        state['last_stats'] = list(self.last_stats)
        return state

    def _load_extra_state(self, state: Mapping) -> None:
        super()._load_extra_state(state)
        self.last_stats = [float(v) for v in state.get('last_stats', [])]
        self._stats = None
