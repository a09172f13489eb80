"""The interface shared by every loss-balancing rule of mmdet_alwa.

A rule is pure torch/python: it knows nothing of mmdet or mmengine, so it can
be used in any training loop. The mmdet glue (``LossWeightingHook``) feeds it
one training iteration's *unweighted* task losses and applies its weights at
the next iteration; under DDP the glue all-reduces the inputs first, so every
rank's rule sees the same stream and ends in the same state.

Contract::

    rule = SomeRule(tasks=('cls', 'reg'), ...)
    for it in range(num_iters):
        w = rule.weights                           # {'cls': float, 'reg': float}
        loss = sum(rule.weight_loss(t, raw[t]) for t in rule.tasks)
        loss.backward(); optimizer.step()
        rule.step({t: raw[t].item() for t in rule.tasks})

Guards implemented here for every rule: a non-finite loss value is never given
to ``_update`` (it is counted per task instead), and unknown or missing keys
raise ``ValueError``.

Host reads (GPU training): the glue reads the device once per iteration --
the reduced losses and signals, and the rule's :meth:`~BaseWeighting.
device_state` in the same transfer -- so a rule computes on python floats
after that read. A same-iteration rule's :meth:`~BaseWeighting.prepare`
gets the losses as device tensors and returns device weights without
reading them (docs/balancers.md, "Host reads").
"""
import math
from abc import ABCMeta, abstractmethod
from typing import (Any, ClassVar, Dict, List, Mapping, Optional, Sequence,
                    Union)

import torch

__all__ = ['BaseWeighting']


class BaseWeighting(metaclass=ABCMeta):
    """Base class of the loss-balancing rules.

    Args:
        tasks (Sequence[str]): names of the balanced losses, e.g.
            ``('cls', 'reg')``. The keys of ``step``'s ``raw_losses`` and of
            ``weights``.

    Subclasses implement :meth:`_update` and :attr:`weights`, and, if they
    keep state across iterations, :meth:`_extra_state` and
    :meth:`_load_extra_state`. Rules that need more than the losses (DTP's
    KPIs, GradNorm's gradient norms) list the keyword names in
    :attr:`required_signals`; each signal is a ``{task: float}`` mapping.
    """

    #: keyword arguments of :meth:`step` the rule needs besides the losses.
    required_signals: ClassVar[tuple] = ()
    #: True: an iteration's weights depend on that iteration's own losses;
    #: the glue then calls :meth:`prepare` with them (after the forward,
    #: before backward) and only then :meth:`weight_loss`.
    same_iteration: bool = False

    def __init__(self, tasks: Sequence[str] = ('cls', 'reg')) -> None:
        if isinstance(tasks, str) or not tasks or \
                not all(isinstance(t, str) and t for t in tasks) or \
                len(set(tasks)) != len(tasks):
            raise ValueError(
                f'tasks must be a non-empty sequence of distinct names, '
                f'got {tasks!r}')
        self.tasks = tuple(tasks)
        self.num_steps = 0
        self.num_nonfinite = {t: 0 for t in self.tasks}

    # ------------------------------------------------------------------ api
    @property
    @abstractmethod
    def weights(self) -> Dict[str, float]:
        """The weights to apply at the next iteration, one per task."""

    def step(self, raw_losses: Mapping[str, float],
             nonfinite: Optional[Mapping[str, int]] = None,
             **signals: Mapping[str, float]) -> None:
        """Record one iteration's unweighted losses and update the weights.

        Args:
            raw_losses: ``{task: loss}`` for every task of the rule. Values
                may be python floats or 0-d tensors; non-finite values are
                counted and not recorded.
            nonfinite: ``{task: count}``, how many of the values that
                ``raw_losses`` summarises were not finite (under DDP: the
                ranks whose loss was NaN/inf; ``raw_losses`` is then the
                mean of the others). Default: 1 for a non-finite value of
                ``raw_losses``, else 0. ``num_nonfinite`` adds it up.
            **signals: the extra per-task inputs named in
                :attr:`required_signals`.
        """
        self._check_keys('raw_losses', raw_losses)
        if nonfinite is not None:
            self._check_keys('nonfinite', nonfinite)
        missing = [s for s in self.required_signals if s not in signals]
        if missing:
            raise ValueError(
                f'{type(self).__name__}.step() needs the signals {missing}')
        finite = {}
        for task in self.tasks:
            value = float(raw_losses[task])
            if math.isfinite(value):
                finite[task] = value
            if nonfinite is not None:
                self.num_nonfinite[task] += int(nonfinite[task])
            elif task not in finite:
                self.num_nonfinite[task] += 1
        self.num_steps += 1
        self._update(finite, **signals)

    def prepare(self, raw_losses: Mapping[str, Union[float, torch.Tensor]]
                ) -> Dict[str, Union[float, torch.Tensor]]:
        """See this iteration's raw losses (NaN: not finite on any rank)
        before its losses are weighted, and return the weights to apply to
        them (plain factors); only called when :attr:`same_iteration` is
        True.

        ``raw_losses`` are python floats, or 0-d tensors: the glue passes
        the rank-averaged losses on the model's device, and a rule then
        computes its weights there, as 0-d tensors, without reading them
        (no host sync). Its python state follows in :meth:`step`, which
        gets the same losses as numbers after the iteration's one read.
        Default: the current :attr:`weights`.
        """
        return self.weights

    def device_state(self) -> List[torch.Tensor]:
        """Device tensors whose values :meth:`step`, :attr:`weights`,
        :meth:`log_scalars` and :meth:`state_dict` need as numbers
        (uncertainty weighting: its learnable log-variances).

        The glue reads them after the optimizer step, in the same host
        transfer as the iteration's reduced statistics (not reduced: every
        rank holds the same values), and hands the numbers to
        :meth:`set_device_values` before :meth:`step`. A rule used without
        the glue reads them itself when it needs them. Default: none.
        """
        return []

    def set_device_values(self, values: Sequence[float]) -> None:
        """The values of :meth:`device_state` as read by the glue: the
        tensors flattened, concatenated in order, as python floats."""
        if values:
            raise ValueError(f'{type(self).__name__} has no device state, '
                             f'got {len(values)} values')

    def weight_loss(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        """Apply the current weight of ``task`` to a loss tensor.

        The default multiplies by ``weights[task]``; rules whose weighting is
        not a plain factor (uncertainty weighting) override it.
        """
        return loss * self.weights[task]

    def regularizer(self) -> Optional[torch.Tensor]:
        """A loss term added once per iteration (``None``: nothing)."""
        return None

    def parameters(self) -> List[torch.nn.Parameter]:
        """Learnable parameters to be trained by the main optimizer."""
        return []

    def log_scalars(self) -> Dict[str, float]:
        """Scalars to log after each step (weights and guard counters)."""
        scalars = {f'weight_{t}': float(w) for t, w in self.weights.items()}
        scalars.update(
            {f'nonfinite_{t}': float(n) for t, n in self.num_nonfinite.items()})
        return scalars

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue the weight trajectory exactly."""
        return dict(
            type=type(self).__name__,
            tasks=list(self.tasks),
            num_steps=self.num_steps,
            num_nonfinite=dict(self.num_nonfinite),
            **self._extra_state())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get('type') != type(self).__name__:
            raise ValueError(
                f'state is for rule {state.get("type")!r}, '
                f'not {type(self).__name__!r}')
        if tuple(state.get('tasks', ())) != self.tasks:
            raise ValueError(
                f'state is for tasks {state.get("tasks")!r}, not {self.tasks}')
        self.num_steps = int(state['num_steps'])
        self.num_nonfinite = {t: int(state['num_nonfinite'][t])
                              for t in self.tasks}
        self._load_extra_state(state)

    # -------------------------------------------------------- for subclasses
    @abstractmethod
    def _update(self, losses: Dict[str, float],
                **signals: Mapping[str, float]) -> None:
        """Update the state from one iteration.

        Args:
            losses: the *finite* raw losses of this iteration; a task whose
                loss was non-finite is absent.
        """

    def _extra_state(self) -> Dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    def _check_keys(self, name: str, mapping: Mapping[str, Any]) -> None:
        if not isinstance(mapping, Mapping):
            raise ValueError(f'{name} must be a mapping task -> value, '
                             f'got {type(mapping).__name__}')
        keys = set(mapping)
        if keys != set(self.tasks):
            raise ValueError(
                f'{name} must have exactly the keys {sorted(self.tasks)}, '
                f'got {sorted(keys)}')

    def __repr__(self) -> str:
        return f'{type(self).__name__}(tasks={self.tasks}, ' \
               f'weights={self.weights})'
