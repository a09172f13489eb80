"""Fast Adaptive Multitask Optimization (FAMO).

B. Liu, Y. Feng, P. Stone, Q. Liu, "FAMO: Fast Adaptive Multitask
Optimization", NeurIPS 2023, arXiv:2306.03792, Algorithm 1.
"""
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch.optim import Adam
from torchjd.scalarization import FAMO as _TorchJDFAMO

from .registry import register_rule
from .scalarized import ScalarizerWeighting, _on_device
from .validation import check_positive

__all__ = ['FAMO']


@register_rule
class FAMO(ScalarizerWeighting):
    r"""FAMO: decrease every task loss at about the same rate, from the
    loss values alone.

    With logits :math:`\xi \in \mathbb R^K`, :math:`z = \mathrm{softmax}
    (\xi)`, lower bounds :math:`b` (0 by default) and :math:`\epsilon =
    10^{-8}`, TorchJD's ``FAMO`` scalarizer is

    .. math::

        S(L) = \frac{\sum_k z_k \log(L_k - b_k + \epsilon)}
                    {\sum_k z_k / (L_k - b_k + \epsilon)}
        \quad\text{(the denominator detached)}, \qquad
        w_k = c\,\frac{\partial S}{\partial L_k}
            = c\,\frac{z_k / (L_k - b_k + \epsilon)}
                      {\sum_j z_j / (L_j - b_j + \epsilon)}

    (a convex combination of the task gradients of :math:`\log L_k`,
    evaluated at this iteration's losses; same iteration, see
    :mod:`.scalarized`). The logits are learned by TorchJD's
    ``FAMO.update``: one Adam step (``lr``, ``weight_decay``) along
    :math:`\nabla_\xi z^\top \delta`, with :math:`\delta_k = \log(L_k^
    \mathrm{before} - b_k + \epsilon) - \log(L_k^\mathrm{after} - b_k +
    \epsilon)`.

    Which losses are "before" and "after":

    - ``losses_after='reforward'``: the paper (Algorithm 1, and TorchJD's
      example) re-forwards the same batch after the optimizer step:
      :math:`L^\mathrm{before} = L(t)`, :math:`L^\mathrm{after}` the
      losses of that batch after the step (the ``loss_after_step`` signal,
      which the glue's provider measures with one more forward without
      backward), so :math:`\delta` is the exact decrease the step made.
    - ``losses_after='next_iteration'`` (default), the cheaper
      **next-iteration losses**: after iteration
      :math:`t` the logits are updated with :math:`L^\mathrm{before} =
      L(t-1)`, :math:`L^\mathrm{after} = L(t)`, the (rank-averaged) losses
      of two consecutive iterations, on different batches. No extra forward
      (a few :math:`K`-element kernels); :math:`\delta` then also holds the
      difference between the two batches, zero-mean noise that Adam
      averages out but that slows the logits' adaptation when the batch
      noise is large relative to one step's decrease. An iteration with a
      non-finite loss makes no update, nor does the next one (its "before"
      is missing).

    The update of iteration :math:`t` runs on the device at the start of
    iteration :math:`t+1` (:meth:`prepare`; nothing reads the logits in
    between), once :meth:`step` has seen that both losses are finite, so
    the logits and Adam's state are read with the iteration's statistics
    (:meth:`device_state`, no extra host read) and saved in the state
    (``logits``, ``adam``, and the pending pair of losses): a resumed run
    continues identically. The scalarizer runs in float64.

    Shapes: losses, logits, ``min_losses`` and the weights ``(K,)``.

    Example::

        >>> rule = FAMO(tasks=('cls', 'reg'))
        >>> w = rule.prepare({'cls': 1.0, 'reg': 3.0})  # z = (1/2, 1/2)
        >>> round(w['cls'], 6), round(w['reg'], 6)
        (0.75, 0.25)

    Args:
        tasks: names of the balanced losses.
        lr (float): Adam's learning rate of the logits. Default 0.025 (the
            paper's).
        weight_decay (float): Adam's weight decay of the logits. Default
            1e-3 (the paper's Algorithm 2; the official code uses 1e-5).
        min_losses (sequence of float, optional): :math:`b`, one per task.
            Default 0.
        scale (float): :math:`c`. Default 1.
        losses_after (str): ``'next_iteration'`` (default, no extra
            forward) or ``'reforward'`` (the paper's; needs the
            ``loss_after_step`` signal: ``step(raw, loss_after_step=...)``).
    """

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg'),
                 lr: float = 0.025, weight_decay: float = 1e-3,
                 min_losses: Optional[Sequence[float]] = None,
                 scale: float = 1.0,
                 losses_after: str = 'next_iteration') -> None:
        super().__init__(tasks, scale)
        if losses_after not in ('next_iteration', 'reforward'):
            raise ValueError(f'FAMO: losses_after must be "next_iteration" '
                             f'or "reforward", got {losses_after!r}')
        self.losses_after = losses_after
        self.required_signals = ('loss_after_step', ) \
            if losses_after == 'reforward' else ()
        self.lr = check_positive('lr', lr)
        if isinstance(weight_decay, bool) or \
                not isinstance(weight_decay, (int, float)) or \
                not weight_decay >= 0:
            raise ValueError(f'weight_decay must be a number >= 0, '
                             f'got {weight_decay!r}')
        self.weight_decay = float(weight_decay)
        if min_losses is not None:
            min_losses = [float(v) for v in min_losses]
            if len(min_losses) != len(self.tasks):
                raise ValueError(f'FAMO: min_losses needs one value per task '
                                 f'({len(self.tasks)}), got {min_losses}')
            min_losses = torch.tensor(min_losses, dtype=torch.float64)
        self.scalarizer = _TorchJDFAMO(
            len(self.tasks), min_losses=min_losses, lr=self.lr,
            weight_decay=self.weight_decay).double()
        self.num_updates = 0
        # losses of the last two iterations: (t-1, t) as device vectors and
        # numbers, once step() has seen both finite; the update is pending
        self._pending_pair: Optional[List[torch.Tensor]] = None
        self._pending_values: Optional[List[List[float]]] = None
        self._losses: Optional[torch.Tensor] = None  # this iteration's
        self._prev_values: Optional[List[float]] = None
        self._prev: Optional[torch.Tensor] = None
        self._adam_to_load: Optional[Dict[str, Any]] = None
        # logits and Adam state as numbers (from device_state or a read)
        self._state_values: Optional[Dict[str, Any]] = None
        self._last_values()

    @property
    def logits(self) -> torch.nn.Parameter:
        r""":math:`\xi`, TorchJD's parameter (shape ``(K,)``)."""
        return next(self.scalarizer.parameters())

    def _optimizer(self) -> Adam:
        """The scalarizer's Adam (TorchJD 0.18 keeps it in ``_optimizer``
        and creates it at the first update; created here, to save and
        restore its state)."""
        opt = getattr(self.scalarizer, '_optimizer', 'missing')
        if opt == 'missing':
            raise ValueError('FAMO: torchjd.scalarization.FAMO has no '
                             '_optimizer attribute; this rule needs torchjd '
                             '0.18 (requirements/runtime.txt)')
        if opt is None:
            opt = Adam([self.logits], lr=self.lr,
                       weight_decay=self.weight_decay)
            if self._adam_to_load is not None:
                saved = self._adam_to_load
                opt.load_state_dict(dict(
                    state={0: dict(
                        step=torch.tensor(float(saved['step'])),
                        exp_avg=torch.tensor(saved['exp_avg'],
                                             dtype=torch.float64),
                        exp_avg_sq=torch.tensor(saved['exp_avg_sq'],
                                                dtype=torch.float64))},
                    param_groups=[dict(opt.state_dict()['param_groups'][0])]))
                self._adam_to_load = None
            self.scalarizer._optimizer = opt
        return opt

    def _scalarize(self, losses: torch.Tensor) -> torch.Tensor:
        return self.scalarizer(losses)

    def _weights_at(self, losses: torch.Tensor) -> torch.Tensor:
        if self.logits.device != losses.device:
            if getattr(self.scalarizer, '_optimizer', None) is not None:
                raise ValueError('FAMO: the losses moved to another device '
                                 'after the logits were trained')
            self.scalarizer.to(losses.device)
        if self._pending_pair is not None:  # the update of the last step
            before, after = self._pending_pair
            self.scalarizer(before.to(losses.device))  # sets "before"
            self._optimizer()
            self.scalarizer.update(after.to(losses.device))
            self.num_updates += 1
            self._pending_pair = None
            self._pending_values = None
        self._losses = losses
        self._state_values = None  # the logits may have changed
        return self._gradient(losses)

    def device_state(self) -> List[torch.Tensor]:
        state = super().device_state()
        if state:
            state += self._state_tensors()
        return state

    def _state_tensors(self) -> List[torch.Tensor]:
        """The logits and Adam's moments (its step count is
        ``num_updates``, known without a read)."""
        tensors = [self.logits.detach()]
        opt = getattr(self.scalarizer, '_optimizer', None)
        if opt is not None and opt.state:
            adam = opt.state[self.logits]
            tensors += [adam['exp_avg'], adam['exp_avg_sq']]
        return tensors

    def _set_extra_device_values(self, values: List[float]) -> None:
        k = len(self.tasks)
        if len(values) not in (k, 3 * k):
            raise ValueError(f'FAMO: {k} logits (and Adam state) expected, '
                             f'got {len(values)} values')
        self._state_values = self._numbers(values)

    def _numbers(self, values: List[float]) -> Dict[str, Any]:
        k = len(self.tasks)
        numbers: Dict[str, Any] = dict(logits=values[:k], adam=None)
        if len(values) > k:
            numbers['adam'] = dict(step=float(self.num_updates),
                                   exp_avg=values[k:2 * k],
                                   exp_avg_sq=values[2 * k:])
        return numbers

    def _read_state(self) -> Dict[str, Any]:
        """The logits and Adam state as numbers (read if no glue)."""
        if self._state_values is None:
            if self._adam_to_load is not None:  # loaded, not used yet
                self._state_values = dict(
                    logits=[float(v) for v in self.logits.detach()],
                    adam=dict(self._adam_to_load))
            else:
                self._state_values = self._numbers(torch.cat(
                    [t.reshape(-1).double() for t in self._state_tensors()]
                ).tolist())
        return self._state_values

    def _update(self, losses: Dict[str, float], **signals) -> None:
        super()._update(losses)
        if len(losses) < len(self.tasks):  # a non-finite loss: no update
            self._prev, self._prev_values, self._losses = None, None, None
            return
        values = [losses[t] for t in self.tasks]
        current = self._losses if self._losses is not None else \
            _on_device(values, self.logits.device)
        if self.losses_after == 'reforward':
            after = signals['loss_after_step']
            after = [float(after[t]) for t in self.tasks]
            self._losses = None
            if all(math.isfinite(v) for v in after):
                self._pending_pair = [current, _on_device(
                    after, self.logits.device)]
                self._pending_values = [values, after]
            return
        if self._prev is not None:
            self._pending_pair = [self._prev, current]
            self._pending_values = [self._prev_values, values]
        self._prev, self._prev_values, self._losses = current, values, None

    def log_scalars(self) -> Dict[str, float]:
        scalars = super().log_scalars()
        logits = self._read_state()['logits']
        scalars.update({f'logit_{t}': float(v)
                        for t, v in zip(self.tasks, logits)})
        scalars['num_updates'] = float(self.num_updates)
        return scalars

    def _extra_state(self) -> Dict[str, Any]:
        numbers = self._read_state()
        return dict(super()._extra_state(),
                    losses_after=self.losses_after,
                    logits=list(numbers['logits']), adam=numbers['adam'],
                    num_updates=self.num_updates,
                    prev_losses=self._prev_values,
                    pending_pair=self._pending_values)

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        saved = state.get('losses_after', 'next_iteration')
        if saved != self.losses_after:
            raise ValueError(f'FAMO: the state is of losses_after={saved!r}, '
                             f'this rule has {self.losses_after!r}')
        super()._load_extra_state(state)
        with torch.no_grad():  # in place, where the logits are
            self.logits.copy_(torch.tensor(state['logits'],
                                           dtype=torch.float64))
        self.scalarizer._optimizer = None  # rebuilt from the state
        self._adam_to_load = None if state['adam'] is None else dict(
            step=float(state['adam']['step']),
            exp_avg=[float(v) for v in state['adam']['exp_avg']],
            exp_avg_sq=[float(v) for v in state['adam']['exp_avg_sq']])
        self.num_updates = int(state['num_updates'])
        device = self.logits.device
        self._prev_values = None if state['prev_losses'] is None else \
            [float(v) for v in state['prev_losses']]
        self._prev = None if self._prev_values is None else \
            _on_device(self._prev_values, device)
        pair = state['pending_pair']
        self._pending_values = None if pair is None else \
            [[float(v) for v in p] for p in pair]
        self._pending_pair = None if pair is None else \
            [_on_device(p, device) for p in self._pending_values]
        self._losses = None
        self._state_values = None
