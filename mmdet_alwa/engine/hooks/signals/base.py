"""The signal-provider protocol: per-task inputs of a rule other than its
losses.

A rule lists in ``required_signals`` the extra keyword arguments its
``step()`` needs (DTP: ``'kpi'``; GradNorm/TDB: ``'grad_norm'``, TDB also
``'num_samples'``). :class:`~mmdet_alwa.engine.hooks.LossWeightingHook`
builds one provider per name from ``SIGNAL_PROVIDERS``, an mmengine
``Registry`` of :mod:`mmdet_alwa.registry` (config: the hook's
``signals`` argument, default ``dict(type=<name>)``), drives it through the
training iteration and all-reduces what it collects, like the losses, before
``rule.step``.

Life cycle of a provider, as called by the hook::

    attach(model, loss_modules)  # once, in before_run (unwrapped detector);
                                 # raises ValueError if it cannot work there
    for every training iteration:
        reset()                  # before_train_iter
        # forward: the loss modules run (the provider may have hooked them)
        on_losses(raw, rule)     # after the detector's loss forward, before
                                 # backward and before rule.regularizer()
        # backward, optimizer step
        collect() -> {task: value}   # after_train_iter, then all-reduced
        watch({task: float})     # the reduced values, after the one read
    detach()                     # after_run

Host reads: ``collect()`` returns 0-d tensors on the model's device (or
python floats for values known without measuring), never reading a device
tensor; the hook all-reduces them with the losses and reads everything in
one transfer (docs/balancers.md, "Host reads"), then hands the reduced
floats to :meth:`SignalProvider.watch`.

Providers keep no state across iterations that a rule depends on (that
belongs to the rule, which is checkpointed); they only count how long each
task's signal has been empty, to warn once (:meth:`SignalProvider.watch`).
"""
import logging
import math
from typing import Any, Dict, List, Mapping, Type, Union

import torch
from mmengine.logging import print_log
from torch import nn

from mmdet_alwa.registry import SIGNAL_PROVIDERS
from mmdet_alwa.weighting.validation import check_int

__all__ = ['SignalProvider', 'SIGNAL_PROVIDERS', 'register_signal_provider',
           'build_signal_provider']


class SignalProvider:
    """Base class of the signal providers (all methods but ``collect`` are
    optional no-ops).

    Attributes set by :meth:`attach`: ``model`` (the unwrapped detector),
    ``loss_modules`` (``{task: [loss module, ...]}`` as named by the hook's
    ``losses``) and ``module_names`` (``{task: [dotted path, ...]}``).

    Args:
        warn_after (int): warn (once per task) when a task's signal has been
            empty (:meth:`is_empty`) for this many consecutive iterations.
            Default 50.
    """

    #: the name the provider is registered under (set by the decorator)
    signal: str = ''
    #: the runner's optim wrapper, handed over by the hook in ``before_run``
    #: before :meth:`attach` (None outside a Runner): its ``loss_scaler``
    #: (AMP) makes the ``grad_norm`` provider's gradients exact in float16
    optim_wrapper: Any = None

    def __init__(self, warn_after: int = 50) -> None:
        self.warn_after = check_int('warn_after', warn_after)
        self._empty_iters: Dict[str, int] = {}
        self._warned: set = set()

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        """Register forward hooks etc. Called once, in ``before_run``.

        Forward hooks registered here on a loss module run *after* the
        weighting hook's, i.e. they see the weighted output; use
        :meth:`on_losses` for the raw losses.
        """
        self.model = model
        self.loss_modules = loss_modules
        names = {id(m): n for n, m in model.named_modules()}
        self.module_names = {t: [names.get(id(m), type(m).__name__)
                                 for m in ms]
                             for t, ms in loss_modules.items()}

    def reset(self) -> None:
        """Forget the previous iteration (``before_train_iter``)."""

    def on_losses(self, raw: Mapping[str, torch.Tensor], rule: Any) -> None:
        """See this iteration's raw (unweighted) per-task losses, summed over
        the calls of their loss modules and still attached to the graph;
        ``rule`` is the hook's rule (for its current weights)."""

    def collect(self) -> Dict[str, Union[float, torch.Tensor]]:
        """This iteration's value per task (non-finite: not used), as 0-d
        tensors on the model's device or python floats: no host read (the
        hook reads the reduced values once, see the module docstring)."""
        raise NotImplementedError

    def detach(self) -> None:
        """Remove what :meth:`attach` registered (``after_run``)."""

    def is_empty(self, value: float) -> bool:
        """Whether ``value`` carries no information (default: non-finite)."""
        return not math.isfinite(value)

    def watch(self, values: Dict[str, float]) -> Dict[str, float]:
        """Count the empty iterations of each task's signal; warn once when a
        task reaches ``warn_after`` in a row. Returns ``values``.

        The hook calls it after each iteration with the all-reduced values
        of :meth:`collect` (python floats, read once with the losses)."""
        for task, value in values.items():
            if not self.is_empty(value):
                self._empty_iters[task] = 0
                continue
            count = self._empty_iters.get(task, 0) + 1
            self._empty_iters[task] = count
            if count >= self.warn_after and task not in self._warned:
                self._warned.add(task)
                modules = getattr(self, 'module_names', {}).get(task, [])
                print_log(
                    f'signal {self.signal!r} of task {task!r} (loss modules '
                    f'{modules}) has been empty for {count} iterations in a '
                    f'row: {self.empty_reason()}; the rule leaves what '
                    f'depends on it unchanged', logger='current',
                    level=logging.WARNING)
        return values

    def empty_reason(self) -> str:
        """What an empty value means, for the warning."""
        return 'no value was measured'


def register_signal_provider(name: str):
    """Class decorator: register a provider in ``SIGNAL_PROVIDERS`` under
    ``name``, buildable as ``dict(type=name)``; a name registered already is
    mmengine's ``KeyError``."""

    def wrap(cls: Type[SignalProvider]) -> Type[SignalProvider]:
        if not (isinstance(cls, type) and issubclass(cls, SignalProvider)):
            raise TypeError(f'{cls!r} is not a SignalProvider subclass')
        SIGNAL_PROVIDERS.register_module(name=name, module=cls)
        cls.signal = name
        return cls

    return wrap


def build_signal_provider(cfg: Mapping[str, Any]) -> SignalProvider:
    """Build a provider from ``dict(type=name, **kwargs)``.

    ``name`` is looked up in ``SIGNAL_PROVIDERS`` itself, not in its parents
    (mmdet's task utils are no providers), and the class is called directly:
    ``Registry.build`` would switch to the Runner's default scope
    (``mmdet``), whose registry has no providers.
    """
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    providers = SIGNAL_PROVIDERS.module_dict
    if name not in providers:
        raise ValueError(f'unknown signal provider {name!r}; known providers: '
                         f'{sorted(providers)}')
    return providers[name](**cfg)
