"""Signal providers: per-task inputs of a rule other than its losses.

A rule lists in ``required_signals`` the extra keyword arguments its
``step()`` needs (DTP: ``'kpi'``; GradNorm/TDB: ``'grad_norm'``).
:class:`~mmdet_alwa.engine.hooks.LossWeightingHook` builds one provider per
name from ``SIGNAL_PROVIDERS`` (config: the hook's ``signals`` argument,
default ``dict(type=<name>)``), drives it through the training iteration and
all-reduces what it collects, like the losses, before ``rule.step``.

Life cycle of a provider, as called by the hook::

    attach(model, loss_modules)  # once, in before_run (unwrapped detector)
    for every training iteration:
        reset()                  # before_train_iter
        # forward: the loss modules run (the provider may have hooked them)
        on_losses(raw, rule)     # after the detector's loss forward, before
                                 # backward and before rule.regularizer()
        # backward, optimizer step
        collect() -> {task: float}   # after_train_iter, then all-reduced
    detach()                     # after_run

Providers keep no state across iterations (it belongs to the rule, which is
checkpointed): anything they compute is reset at every iteration.
"""
from typing import Any, Dict, List, Mapping, Type

import torch
from torch import nn

__all__ = ['SignalProvider', 'SIGNAL_PROVIDERS', 'register_signal_provider',
           'build_signal_provider']


class SignalProvider:
    """Base class of the signal providers (all methods but ``collect`` are
    optional no-ops).

    Attributes set by :meth:`attach`: ``model`` (the unwrapped detector) and
    ``loss_modules`` (``{task: [loss module, ...]}`` as named by the hook's
    ``losses``).
    """

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        """Register forward hooks etc. Called once, in ``before_run``.

        Forward hooks registered here on a loss module run *after* the
        weighting hook's, i.e. they see the weighted output; use
        :meth:`on_losses` for the raw losses.
        """
        self.model = model
        self.loss_modules = loss_modules

    def reset(self) -> None:
        """Forget the previous iteration (``before_train_iter``)."""

    def on_losses(self, raw: Mapping[str, torch.Tensor], rule: Any) -> None:
        """See this iteration's raw (unweighted) per-task losses, summed over
        the calls of their loss modules and still attached to the graph;
        ``rule`` is the hook's rule (for its current weights)."""

    def collect(self) -> Dict[str, float]:
        """This iteration's value per task (non-finite: not used)."""
        raise NotImplementedError

    def detach(self) -> None:
        """Remove what :meth:`attach` registered (``after_run``)."""


SIGNAL_PROVIDERS: Dict[str, Type[SignalProvider]] = {}


def register_signal_provider(name: str):
    """Class decorator: make a provider buildable as ``dict(type=name)``."""

    def wrap(cls: Type[SignalProvider]) -> Type[SignalProvider]:
        if not (isinstance(cls, type) and issubclass(cls, SignalProvider)):
            raise TypeError(f'{cls!r} is not a SignalProvider subclass')
        SIGNAL_PROVIDERS[name] = cls
        return cls

    return wrap


def build_signal_provider(cfg: Mapping[str, Any]) -> SignalProvider:
    """Build a provider from ``dict(type=name, **kwargs)``."""
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    if name not in SIGNAL_PROVIDERS:
        raise ValueError(f'unknown signal provider {name!r}; known providers: '
                         f'{sorted(SIGNAL_PROVIDERS)}')
    return SIGNAL_PROVIDERS[name](**cfg)
