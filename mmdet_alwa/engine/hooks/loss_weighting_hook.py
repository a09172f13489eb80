"""``LossWeightingHook``: attach any balancing rule of
:mod:`mmdet_alwa.weighting` to named loss modules of any mmdet detector.

Usage (one ``default_hooks`` entry keyed by its name, so that a child config
changes one knob with one line, e.g. ``default_hooks =
dict(alwa=dict(rule=dict(interval=50)))``; the model config is left
untouched)::

    custom_imports = dict(imports=['mmdet_alwa'], allow_failed_imports=False)
    default_hooks = dict(
        alwa=dict(type='LossWeightingHook', name='alwa',
                  rule=dict(type='ALWA', variant=1, interval=100),
                  head='rpn_head',
                  losses=dict(cls='loss_cls', reg='loss_bbox')))

How it works. In ``before_run`` the dotted paths of ``losses`` are resolved
on the unwrapped detector (a task may name several modules; their outputs are
summed) and a forward hook is registered on each loss module. During a
training iteration that hook (a) keeps the output, so that the task's *raw*
loss of the iteration is the sum over all calls (dense heads call their
losses once per FPN level), and (b) returns ``rule.weight_loss(task,
output)``, so the weighted loss is what mmdet sums and back-propagates (and
what its log shows as ``loss_rpn_cls``...). "Raw" is the loss module's output,
i.e. its own ``loss_weight`` included. Nothing in the model or loss config
changes, so heads keep reading ``use_sigmoid``/``custom_cls_channels`` and the
detector's ``state_dict`` is that of plain mmdet. Outside training iterations
(validation, test, inference) the hooks pass outputs through unchanged.

In ``after_train_iter`` the raw totals (and signals) are all-reduced across
ranks (mean over the ranks whose value is finite; NaN if none is), then
``rule.step(raw, **signals)`` runs, so every rank's rule sees the same
stream and holds the same weights. ``rule.log_scalars()`` and the reduced raw
losses go to the message hub as ``train/<name>/<key>`` (text log,
``vis_data/scalars.json``, TensorBoard).

Extension points for other rules:

* ``rule.parameters()`` (learnable weights): added in ``before_run`` as an
  extra param group (``param_group`` options) of the runner's optimizer,
  before a resume loads the optimizer state; their gradients are averaged
  across DDP ranks during backward (they live outside the DDP module).
* ``rule.regularizer()``: added once per training iteration to the detector's
  loss dict as ``loss_<name>_regularizer`` by a forward hook on the detector,
  which runs after ``forward(mode='loss')`` returns and before backward.
* ``rule.required_signals``: one :class:`~.signals.SignalProvider` per name,
  from ``SIGNAL_PROVIDERS`` (see :mod:`.signals` for the protocol).
* ``rule.weight_loss``: rules whose weighting is not a plain factor override
  it; the hook only calls it.

Checkpoints: ``before_save_checkpoint`` stores ``rule.state_dict()`` under
``checkpoint['mmdet_alwa'][name]``; ``after_load_checkpoint`` (resume and
``load_from``) restores it when present, else warns and starts fresh.

Priority ``NORMAL`` (50): ``after_train_iter`` must run before ``LoggerHook``
(``BELOW_NORMAL``) so that this iteration's scalars are logged, and before
``CheckpointHook`` (``VERY_LOW``) so that a checkpoint saved at iteration i
holds the rule state after step i (exact resume).
"""
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn

from mmdet.registry import HOOKS
from mmdet_alwa.weighting import BaseWeighting, build_rule

from .signals import SignalProvider, build_signal_provider

__all__ = ['LossWeightingHook', 'CHECKPOINT_KEY']

#: checkpoint[CHECKPOINT_KEY][name] holds a hook's rule state
CHECKPOINT_KEY = 'mmdet_alwa'


def _loss_module_names(model: nn.Module) -> List[str]:
    return [n for n, m in model.named_modules()
            if n and (type(m).__name__.endswith('Loss')
                      or n.rsplit('.', 1)[-1].startswith('loss'))]


@HOOKS.register_module()
class LossWeightingHook(Hook):
    """Apply a loss-balancing rule to named loss modules of a detector.

    Args:
        rule (dict): the rule's config, e.g. ``dict(type='ALWA', variant=1)``
            (see :data:`mmdet_alwa.weighting.RULES`).
        losses (dict): ``{task: path or [paths]}``: the dotted module paths
            (on the unwrapped detector, or relative to ``head``) of each
            task's loss modules; the keys must be the rule's tasks, e.g.
            ``dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox')``.
        name (str, optional): the prefix of the logged scalars and the key of
            the checkpointed state. Default: the rule type in lower case.
            Two hooks on one runner need different names.
        signals (dict, optional): ``{signal: provider config}`` for the
            rule's ``required_signals``; default ``dict(type=signal)``.
        param_group (dict, optional): optimizer options of the param group
            of a rule with learnable parameters (e.g. ``dict(lr=0.025,
            weight_decay=0.0)``); default: the optimizer's defaults.
        head (str, optional): a module path joined before every path of
            ``losses``, e.g. ``head='rpn_head'`` with
            ``losses=dict(cls='loss_cls', reg='loss_bbox')``, so that a
            child config moves the hook to another head with one line.
            Default: None (the paths of ``losses`` are absolute).
    """

    priority = 'NORMAL'

    def __init__(self,
                 rule: Mapping[str, Any],
                 losses: Mapping[str, Union[str, Sequence[str]]],
                 name: Optional[str] = None,
                 signals: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 param_group: Optional[Mapping[str, Any]] = None,
                 head: Optional[str] = None) -> None:
        if not isinstance(rule, Mapping) or 'type' not in rule:
            raise ValueError(
                f'rule must be a dict with a "type", got {rule!r}')
        self.rule: BaseWeighting = build_rule(rule)
        name = str(rule['type']).lower() if name is None else name
        if not isinstance(name, str) or not name or '/' in name:
            raise ValueError(f'name must be a non-empty string without "/", '
                             f'got {name!r}')
        self.name = name
        self.loss_paths = self._check_losses(losses, head)
        signals = dict(signals or {})
        unknown = set(signals) - set(self.rule.required_signals)
        if unknown:
            raise ValueError(
                f'signals {sorted(unknown)} are not required by rule '
                f'{type(self.rule).__name__} (it requires '
                f'{list(self.rule.required_signals)})')
        self.providers: Dict[str, SignalProvider] = {
            s: build_signal_provider(signals.get(s, dict(type=s)))
            for s in self.rule.required_signals}
        if param_group is not None and not isinstance(param_group, Mapping):
            raise ValueError(
                f'param_group must be a dict, got {param_group!r}')
        self.param_group = dict(param_group or {})
        self._handles: List[Any] = []
        self._outputs: Dict[str, List[torch.Tensor]] = {
            t: [] for t in self.rule.tasks}
        self._active = False
        self._attached = False
        self._last_weights: Optional[Dict[str, float]] = None

    def _check_losses(self, losses,
                      head: Optional[str] = None) -> Dict[str, List[str]]:
        if head is not None and not (
                isinstance(head, str) and head
                and all(head.split('.'))):
            raise ValueError(f'head must be a dotted module path such as '
                             f'"rpn_head" or None, got {head!r}')
        if not isinstance(losses, Mapping):
            raise ValueError(f'losses must be a dict task -> module path, '
                             f'got {losses!r}')
        if set(losses) != set(self.rule.tasks):
            raise ValueError(
                f'losses must have exactly the keys {list(self.rule.tasks)} '
                f'(the tasks of rule {type(self.rule).__name__}), got '
                f'{sorted(losses)}')
        paths = {}
        for task in self.rule.tasks:
            value = losses[task]
            value = [value] if isinstance(value, str) else list(value)
            if not value or not all(isinstance(p, str) and p for p in value):
                raise ValueError(f'losses[{task!r}] must be a module path or '
                                 f'a list of them, got {losses[task]!r}')
            paths[task] = value if head is None else [
                f'{head}.{p}' for p in value]
        return paths

    # ------------------------------------------------------------ set-up
    def before_run(self, runner) -> None:
        if self._attached:  # train() then test() call before_run twice
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        loss_modules = self._resolve(model)
        for task, modules in loss_modules.items():
            for module in modules:
                self._handles.append(module.register_forward_hook(
                    self._make_loss_hook(task)))
        self._handles.append(model.register_forward_hook(self._detector_hook))
        for provider in self.providers.values():
            provider.attach(model, loss_modules)
        self._add_parameters(runner, model)
        self._attached = True

    def _resolve(self, model: nn.Module) -> Dict[str, List[nn.Module]]:
        resolved, seen = {}, {}
        for task, paths in self.loss_paths.items():
            resolved[task] = []
            for path in paths:
                try:
                    module = model.get_submodule(path)
                except AttributeError:
                    module = None
                if module is None:
                    raise ValueError(
                        f'{type(self).__name__}({self.name}): '
                        f'losses[{task!r}] = {path!r} is not a module of '
                        f'{type(model).__name__}; its loss modules are: '
                        f'{_loss_module_names(model)}')
                if id(module) in seen:
                    raise ValueError(f'loss module {path!r} is named twice '
                                     f'(also as {seen[id(module)]!r})')
                seen[id(module)] = path
                resolved[task].append(module)
        return resolved

    def _add_parameters(self, runner, model: nn.Module) -> None:
        params = list(self.rule.parameters())
        if not params:
            return
        optim_wrapper = runner.optim_wrapper
        if not isinstance(optim_wrapper, OptimWrapper):
            if isinstance(optim_wrapper, Mapping):  # val/test: no optimizer
                return
            raise ValueError(
                f'rule {type(self.rule).__name__} has learnable parameters; '
                f'{type(self).__name__} needs a single OptimWrapper, got '
                f'{type(optim_wrapper).__name__}')
        device = next(model.parameters()).device
        for p in params:
            p.data = p.data.to(device)
            if dist.get_world_size() > 1:
                p.register_post_accumulate_grad_hook(self._average_grad)
        group = dict(self.param_group, params=params)
        optimizer = optim_wrapper.optimizer
        optimizer.add_param_group(group)
        # param schedulers read initial_<x> of every group
        new = optimizer.param_groups[-1]
        for key in optimizer.param_groups[0]:
            if key.startswith('initial_') and key[8:] in new:
                new.setdefault(key, new[key[8:]])

    @staticmethod
    def _average_grad(param: torch.Tensor) -> None:
        dist.all_reduce(param.grad, op='mean')

    # -------------------------------------------------------- the forward
    def _make_loss_hook(self, task: str):

        def hook(module, args, output):
            if not self._active:
                return None
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f'{type(self).__name__}({self.name}): the loss module of '
                    f'task {task!r} ({type(module).__name__}) returned '
                    f'{type(output).__name__}, expected a tensor')
            self._outputs[task].append(output)
            return self.rule.weight_loss(task, output)

        return hook

    def _detector_hook(self, module, args, output):
        if not (self._active and isinstance(output, dict)):
            return None
        if self.providers:
            raw = {t: self._raw_sum(t) for t in self.rule.tasks}
            for provider in self.providers.values():
                provider.on_losses(raw, self.rule)
        reg = self.rule.regularizer()
        if reg is not None:
            output[f'loss_{self.name}_regularizer'] = reg
        return output

    def _raw_sum(self, task: str) -> Optional[torch.Tensor]:
        outputs = self._outputs[task]
        if not outputs:
            return None
        return torch.stack([o.sum().float() for o in outputs]).sum()

    # -------------------------------------------------------- per iteration
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        for outputs in self._outputs.values():
            outputs.clear()
        for provider in self.providers.values():
            provider.reset()
        self._active = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._active = False
        tasks = self.rule.tasks
        values = []
        for task in tasks:
            total = self._raw_sum(task)
            values.append(math.nan if total is None else total.detach())
            self._outputs[task].clear()
        signals = {s: p.collect() for s, p in self.providers.items()}
        for name, signal in signals.items():
            missing = set(tasks) - set(signal)
            if missing:
                raise ValueError(f'signal provider {name!r} returned no value '
                                 f'for tasks {sorted(missing)}')
            values.extend(signal[t] for t in tasks)
        reduced = self._reduce_mean(values, runner)
        n = len(tasks)
        raw = dict(zip(tasks, reduced[:n]))
        step_signals = {
            name: dict(zip(tasks, reduced[n * (i + 1):n * (i + 2)]))
            for i, name in enumerate(signals)}
        self.rule.step(raw, **step_signals)
        self._log(runner, raw)

    @staticmethod
    def _reduce_mean(values: List[Any], runner) -> List[float]:
        """Mean over ranks of the finite values (NaN where none is)."""
        device = next(iter(runner.model.parameters())).device
        data = torch.stack([
            torch.as_tensor(v, dtype=torch.float64, device=device).reshape(())
            for v in values])
        finite = torch.isfinite(data)
        stacked = torch.stack([torch.where(finite, data, 0.0),
                               finite.to(torch.float64)])
        dist.all_reduce(stacked, op='sum')
        total, count = stacked.tolist()
        return [t / c if c > 0 else math.nan for t, c in zip(total, count)]

    def _log(self, runner, raw: Dict[str, float]) -> None:
        hub = runner.message_hub
        prefix = f'train/{self.name}/'
        for key, value in self.rule.log_scalars().items():
            hub.update_scalar(prefix + key, value)
        for task, value in raw.items():
            if math.isfinite(value):
                hub.update_scalar(f'{prefix}raw_{task}', value)
        weights = self.rule.weights
        if weights != self._last_weights:
            if self._last_weights is not None:
                runner.logger.info(
                    f'{self.name}: weights after iter {runner.iter + 1}: ' +
                    ', '.join(f'{t}={w:.6g}' for t, w in weights.items()))
            self._last_weights = dict(weights)

    def after_run(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for provider in self.providers.values():
            provider.detach()
        self._attached = False

    # ---------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault(CHECKPOINT_KEY, {})[self.name] = \
            self.rule.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY, {}).get(self.name)
        if state is None:
            print_log(
                f'{type(self).__name__}: the checkpoint has no state for '
                f'{self.name!r} (trained without it, or by an older '
                f'version); the rule starts fresh', logger='current',
                level=logging.WARNING)
            return
        self.rule.load_state_dict(state)
        self._last_weights = dict(self.rule.weights)
