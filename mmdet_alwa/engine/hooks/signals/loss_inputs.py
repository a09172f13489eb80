"""Base of the providers that read the inputs of the loss modules."""
import inspect
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from .base import SignalProvider
from .loss_calls import (KINDS, LossCall, describe_call, infer_kind, owner,
                         parse_loss_call, takes_pred_and_target)

__all__ = ['LossInputProvider', 'as_stats']

#: accepted in ``kinds`` for the box kind (the name of the older API)
_ALIASES = {'reg': 'box'}


class LossInputProvider(SignalProvider):
    """Accumulates per-task sums from each call of the tasks' loss modules
    (a forward pre-hook), for :meth:`collect` to turn into one value per
    task. Subclasses implement :meth:`measure`.

    A call the provider cannot read (see :mod:`.loss_calls`) raises a
    ``ValueError`` naming the module, the call and what is needed, on the
    first iteration.

    Args:
        kinds (dict, optional): ``{task: kind}`` with a kind of
            :data:`~.loss_calls.KINDS` (``'reg'`` means ``'box'``); default:
            inferred from each call (:func:`~.loss_calls.infer_kind`).
        warn_after (int): see :class:`~.base.SignalProvider`.
    """

    def __init__(self, kinds: Optional[Mapping[str, str]] = None,
                 warn_after: int = 50) -> None:
        super().__init__(warn_after)
        kinds = {t: _ALIASES.get(k, k) for t, k in dict(kinds or {}).items()}
        bad = {t: k for t, k in kinds.items() if k not in KINDS}
        if bad:
            raise ValueError(f'kinds must map tasks to one of {KINDS}, '
                             f'got {bad}')
        self.kinds = kinds
        self._handles: List = []
        self.reset()

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        super().attach(model, loss_modules)
        unknown = set(self.kinds) - set(loss_modules)
        if unknown:
            raise ValueError(f'kinds names unknown tasks {sorted(unknown)}; '
                             f'tasks: {sorted(loss_modules)}')
        for task, modules in loss_modules.items():
            for module, name in zip(modules, self.module_names[task]):
                head = owner(model, module)
                if not takes_pred_and_target(module):
                    sig = inspect.signature(module.forward)
                    raise ValueError(
                        f'signal {self.signal!r}: module {name!r} '
                        f'({type(module).__name__}) of task {task!r} is not '
                        f'a loss: its forward{sig} does not take mmdet\'s '
                        f'(pred, target[, weight])')
                self.check_module(task, name, module, head)
                self._handles.append(module.register_forward_pre_hook(
                    self._make_hook(task, name, head), with_kwargs=True))

    def check_module(self, task: str, name: str, module: nn.Module,
                     head: Optional[nn.Module]) -> None:
        """Raise ``ValueError`` in ``before_run`` if ``module`` cannot give
        this signal (default: no static check)."""

    def _make_hook(self, task: str, name: str, head: Optional[nn.Module]):

        def hook(module, args, kwargs):
            call = parse_loss_call(module, args, kwargs)
            if call is None:
                raise ValueError(
                    f'signal {self.signal!r}: cannot read the call of loss '
                    f'module {name!r} ({type(module).__name__}) of task '
                    f'{task!r}: it was called with '
                    f'{describe_call(args, kwargs)}; it needs mmdet\'s '
                    f'(pred, target[, weight]) tensors')
            kind = self.kinds.get(task) or infer_kind(module, call)
            if kind is None:
                raise ValueError(
                    f'signal {self.signal!r}: cannot tell which kind of task '
                    f'loss module {name!r} ({type(module).__name__}) of task '
                    f'{task!r} is from its call '
                    f'{describe_call(args, kwargs)}; set the provider\'s '
                    f'kinds=dict({task}=...) to one of {KINDS}')
            self.kind_of[task] = kind
            with torch.no_grad():
                call = LossCall(*(_detach(v) for v in call))
                sums = self.measure(kind, name, module, head, call)
                if sums is None:  # the subclass keeps it for collect()
                    return
                stats = as_stats(sums, call.pred.device)
            # tensors: no device sync until collect()
            self.stats[task] = self.stats.get(task, 0) + stats

        return hook

    def measure(self, kind: str, name: str, module: nn.Module,
                head: Optional[nn.Module], call: LossCall) -> Optional[list]:
        """The sums of one call (scalars or 0-d tensors), added over the
        iteration's calls of the task; None: the subclass keeps what it
        needs and adds it to :attr:`stats` itself in ``collect()``."""
        raise NotImplementedError

    def reset(self) -> None:
        self.stats: Dict[str, torch.Tensor] = {}
        self.kind_of: Dict[str, str] = {}

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def as_stats(sums, device) -> torch.Tensor:
    """One call's sums (scalars, 0-d tensors) as a float64 vector on
    ``device``, to be added over the calls without a device sync (a python
    number is written with a fill, not copied from host memory)."""
    return torch.stack([
        v.to(device=device, dtype=torch.float64)
        if isinstance(v, torch.Tensor) else
        torch.full((), float(v), dtype=torch.float64, device=device)
        for v in sums])


def _detach(value):
    if isinstance(value, (tuple, list)):
        return type(value)(v.detach() for v in value)
    return value.detach() if value is not None else None

