"""``LossWeightingHook``: attach any balancing rule of
:mod:`mmdet_alwa.weighting` to named loss modules of any mmdet detector.

Usage (one ``default_hooks`` entry, keyed by the hook's name; the model
config is left untouched)::

    custom_imports = dict(imports=['mmdet_alwa'], allow_failed_imports=False)
    default_hooks = dict(alwa=dict(
        type='LossWeightingHook', name='alwa',
        rule=dict(type='ALWA', variant=1, interval=100, init_weight=1.0),
        head='rpn_head', losses=dict(cls='loss_cls', reg='loss_bbox')))

How it works (each mechanism lives in one module of
:mod:`.loss_weighting`):

* loss taps (:mod:`.loss_weighting.taps`): in ``before_run`` the dotted
  paths of ``losses`` are resolved on the unwrapped detector (a task may name
  several modules; their outputs are summed) and forward hooks weight each
  loss module's output with ``rule.weight_loss``, so the weighted loss is
  what mmdet sums, logs (``loss_rpn_cls``...) and back-propagates. "Raw" is
  the loss module's output, its own ``loss_weight`` included. Nothing in the
  model or loss config changes, so the detector's ``state_dict`` is that of
  plain mmdet. Outside training iterations the outputs pass unchanged.
* the iteration's losses (this hook's forward hook on the detector, after
  ``forward(mode='loss')``, before backward): the taps' raw totals go one
  way, to the hook, which hands them to the signal providers and, for rules
  that weight an iteration by its own losses (``rule.same_iteration``:
  Guided Loss, the scalarizers, gradient aggregation), computes the weights
  from the rank-averaged raw losses (``rule.prepare``) on the device -- 0-d
  tensors there, read later with the iteration's statistics -- and has the
  taps put the weighted losses into the loss dict.
* gradient aggregation (:mod:`.loss_weighting.representation`, rules with
  ``needs_gramian``: UPGrad, MGDA, PCGrad, IMTL_G, AlignedMTL, DualProj,
  CAGrad): on the iterations the rule asks for one, the Gramian of the raw
  losses' gradients with respect to the ``representation`` module's outputs
  (default the neck), all-reduced over the ranks, is handed to
  ``rule.prepare``.
* the param group (:mod:`.loss_weighting.param_group`): ``rule.parameters()``
  (learnable weights) become an extra param group (``param_group`` options)
  of the runner's optimizer, which follows the runner's parameter schedulers
  exactly as if it had been there when they were built.
* the finite all-reduce (:mod:`.loss_weighting.reduce`): in
  ``after_train_iter`` the raw totals and signals are averaged over the ranks
  where they are finite, and the number of ranks where a loss was not is
  counted by the rule (``nonfinite_<task>``), so every rank's rule sees the
  same stream and holds the same state.
* one host read per iteration: the losses and the providers' signals stay
  0-d device tensors until that reduce, which reads them in one transfer
  together with the rule's ``device_state()`` (uncertainty weighting's
  log-variances); the rule computes on those python floats, and the
  providers' empty-signal warnings (``provider.watch``) see the reduced
  values. ``tests/test_engine/test_host_reads.py`` holds every rule to
  this budget; docs/balancers.md, "Host reads".
* logging (:mod:`.loss_weighting.scalars`): ``rule.log_scalars()``, the
  reduced raw losses and the param group's lr as ``train/<name>/<key>``.
* checkpoints (:mod:`.loss_weighting.state`): the rule state is saved in
  every checkpoint and restored on resume only (as mmengine's ``EMAHook``);
  ``restore_on_load_from=True`` restores it on ``load_from`` too.

Extension points for other rules: ``rule.regularizer()`` is added once per
iteration to the detector's loss dict as ``loss_<name>_regularizer``;
``rule.required_signals`` get one signal provider each, from
``SIGNAL_PROVIDERS`` (see :mod:`.signals`).

Several hooks may weight different loss modules of one detector (e.g. ALWA
on the RPN and on the RoI head, named ``alwa_rpn`` and ``alwa_roi``); a loss
module named by two hooks of ``runner.hooks``, or two hooks of one name, is
a ``ValueError``.

Note:
    Priority ``NORMAL`` (50): ``after_train_iter`` must run before
    ``LoggerHook`` (``BELOW_NORMAL``) so that this iteration's scalars are
    logged, and before ``CheckpointHook`` (``VERY_LOW``) so that a checkpoint
    saved at iteration i holds the rule state after step i (exact resume).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS
from mmdet_alwa.weighting import BaseWeighting, build_rule

from .loss_weighting import (CHECKPOINT_KEY, LossTaps, RuleCheckpoint,
                             RuleLog, add_rule_param_group, find_param_group,
                             finite_mean, reduce_finite_mean)
from .loss_weighting.representation import (ParameterGramian,
                                            RepresentationTap)
from .loss_weighting.scalars import LowWeightWarning
from .signals import SignalProvider, build_signal_provider

__all__ = ['LossWeightingHook', 'CHECKPOINT_KEY']


@HOOKS.register_module()
class LossWeightingHook(Hook):
    """Apply a loss-balancing rule to named loss modules of a detector.

    Args:
        rule (dict): the rule's config, e.g. ``dict(type='ALWA', variant=1)``
            (see :data:`mmdet_alwa.weighting.RULES`).
        losses (dict): ``{task: path or [paths]}``: the dotted module paths
            (on the unwrapped detector, below ``head`` if given) of each
            task's loss modules; the keys must be the rule's tasks, e.g.
            ``dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox')``.
        name (str, optional): the prefix of the logged scalars and the key of
            the checkpointed state. Default: the rule type in lower case.
            Two hooks on one runner need different names.
        head (str, optional): a module path joined before every path of
            ``losses`` (``head='rpn_head'``, ``losses=dict(cls='loss_cls')``
            names ``rpn_head.loss_cls``). Default: none, absolute paths.
        signals (dict, optional): ``{signal: provider config}`` for the
            rule's ``required_signals``; default ``dict(type=signal)``.
        param_group (dict, optional): optimizer options of the param group
            of a rule with learnable parameters (e.g. ``dict(lr=0.025,
            weight_decay=0.0)``); default: the optimizer's defaults. The
            runner's parameter schedulers act on it as on the model's groups.
        restore_on_load_from (bool): also restore the rule state from a
            checkpoint given by ``load_from`` without resume (a fine-tune).
            Default False: only a resume restores it.
        low_weight_warning (dict or bool, optional): for ALWA, a WARNING
            logged once when α ends ``windows`` consecutive windows below
            ``threshold`` (:class:`~.loss_weighting.scalars.
            LowWeightWarning`): which loss is down-weighted, by how much,
            and a pointer to docs/alwa.md. ``None`` (default):
            ``dict(threshold=0.3, windows=3)`` for ALWA, nothing for the
            other rules (they have no windowed α); ``False``: off; a dict
            for another rule is a ``ValueError``. It only logs: no weight
            changes, no device read.
        representation (str, optional): for gradient aggregation (a rule
            with ``needs_gramian``), the module (dotted path on the
            unwrapped detector) whose outputs are the shared representation
            the task gradients are taken at. Default ``'neck'`` (all FPN
            levels). A ``ValueError`` for another rule.
        exact_gramian (list[str], optional): for gradient aggregation, the
            module paths (e.g. ``['backbone', 'neck']``) whose parameters'
            Jacobian Gramian is computed exactly, by ``torchjd.autogram``,
            instead of the representation Gramian: the methods' own
            definition, at a higher cost; one process only, and not on
            detectors with ops ``torch.vmap`` cannot batch (two-stage:
            RoIAlign); docs/balancers.md, "Gradient aggregation".
    """

    priority = 'NORMAL'

    def __init__(self,
                 rule: Mapping[str, Any],
                 losses: Mapping[str, Union[str, Sequence[str]]],
                 name: Optional[str] = None,
                 head: Optional[str] = None,
                 signals: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 param_group: Optional[Mapping[str, Any]] = None,
                 restore_on_load_from: bool = False,
                 low_weight_warning: Union[None, bool,
                                           Mapping[str, Any]] = None,
                 representation: Optional[str] = None,
                 exact_gramian: Optional[Sequence[str]] = None) -> None:
        if not isinstance(rule, Mapping) or 'type' not in rule:
            raise ValueError(
                f'rule must be a dict with a "type", got {rule!r}')
        self.rule: BaseWeighting = build_rule(rule)
        name = str(rule['type']).lower() if name is None else name
        if not isinstance(name, str) or not name or '/' in name:
            raise ValueError(f'name must be a non-empty string without "/", '
                             f'got {name!r}')
        self.name = name
        if head is not None and (not isinstance(head, str) or not head):
            raise ValueError(f'head must be a module path or None, '
                             f'got {head!r}')
        self.head = head
        self.loss_paths = self._check_losses(losses)
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
        self.taps = LossTaps(name, self.rule, self.loss_paths)
        self.log = RuleLog(name,
                           self._low_weight_warning(low_weight_warning))
        self.checkpoint = RuleCheckpoint(name, restore_on_load_from)
        self.representation: Union[None, RepresentationTap,
                                   ParameterGramian] = None
        if not getattr(self.rule, 'needs_gramian', False):
            for arg, value in (('representation', representation),
                               ('exact_gramian', exact_gramian)):
                if value is not None:
                    raise ValueError(
                        f'LossWeightingHook({name}): {arg} is for gradient '
                        f'aggregation rules (UPGrad, MGDA, ...); rule '
                        f'{type(self.rule).__name__} takes no Gramian')
        elif exact_gramian is not None:
            if representation is not None:
                raise ValueError(f'LossWeightingHook({name}): give '
                                 f'representation or exact_gramian, not '
                                 f'both')
            self.representation = ParameterGramian(name, exact_gramian)
        else:
            self.representation = RepresentationTap(
                name, 'neck' if representation is None else representation)
        self._handles: List = []
        self._optim_wrapper = None
        self._optimizer: Optional[torch.optim.Optimizer] = None
        self._device = torch.device('cpu')
        self._attached = False

    def _check_losses(self, losses) -> Dict[str, List[str]]:
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
            paths[task] = [p if self.head is None else f'{self.head}.{p}'
                           for p in value]
        return paths

    def _low_weight_warning(self, cfg) -> Optional[LowWeightWarning]:
        watchable = callable(getattr(self.rule, 'alpha_window', None))
        if cfg is None:
            cfg = dict() if watchable else False
        if cfg is False:
            return None
        if not isinstance(cfg, Mapping):
            raise ValueError(f'LossWeightingHook({self.name}): '
                             f'low_weight_warning must be a dict, None or '
                             f'False, got {cfg!r}')
        if not watchable:
            raise ValueError(
                f'LossWeightingHook({self.name}): low_weight_warning needs a '
                f'rule with a windowed alpha (ALWA), got '
                f'{type(self.rule).__name__}; set it to None or False')
        unknown = set(cfg) - {'threshold', 'windows'}
        if unknown:
            raise ValueError(f'LossWeightingHook({self.name}): '
                             f'low_weight_warning takes threshold and '
                             f'windows, got {sorted(unknown)}')
        return LowWeightWarning(self.name, self.loss_paths, **cfg)

    # ------------------------------------------------------------ set-up
    def before_run(self, runner) -> None:
        if self._attached:  # train() then test() call before_run twice
            return
        for other in getattr(runner, 'hooks', []):
            if isinstance(other, LossWeightingHook) and other is not self \
                    and other.name == self.name:
                raise ValueError(
                    f'two LossWeightingHooks are named {self.name!r}; give '
                    f'each its own name (the key of its logs and state)')
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        self._device = next(model.parameters()).device
        claimed = {module: other.name
                   for other in getattr(runner, 'hooks', [])
                   if isinstance(other, LossWeightingHook)
                   and other is not self
                   for modules in other.taps.modules.values()
                   for module in modules}
        loss_modules = self.taps.attach(model, claimed)
        if self.representation is not None:
            self.representation.attach(model)
        self._optim_wrapper = getattr(runner, 'optim_wrapper', None)
        for provider in self.providers.values():
            provider.optim_wrapper = self._optim_wrapper
            provider.attach(model, loss_modules)
        # registered after the loss taps: runs once every loss exists
        self._handles.append(model.register_forward_hook(self._on_losses))
        params = list(self.rule.parameters())
        if params:
            self._optimizer = add_rule_param_group(
                runner, params, self.param_group, self._device,
                f'{type(self).__name__}({self.name}) (rule '
                f'{type(self.rule).__name__})')
        self._attached = True

    def _on_losses(self, module, args, output):
        """The detector's forward hook: after the loss forward, before
        backward, with the loss dict; the iteration's raw totals come from
        the taps."""
        if not (self.taps.active and isinstance(output, dict)):
            return None
        raw = self.taps.raw_totals()
        if self.rule.same_iteration:
            # reduced on the device, not read: the weights are device
            # tensors; the rule's python state follows in after_train_iter
            values = [torch.nan if raw[t] is None else raw[t].detach()
                      for t in self.rule.tasks]
            mean, _ = finite_mean(values, self._device)
            mean = dict(zip(self.rule.tasks, mean.unbind()))
            if self.representation is not None and \
                    self.rule.wants_gramian():
                gramian = self.representation.gramian(
                    [raw[t] for t in self.rule.tasks], self._optim_wrapper)
                weights = self.rule.prepare(mean, gramian=gramian)
            else:
                weights = self.rule.prepare(mean)
            self.taps.weight_in_dict(output, weights)
        for provider in self.providers.values():
            provider.on_losses(raw, self.rule)
        reg = self.rule.regularizer()
        if reg is not None:
            output[f'loss_{self.name}_regularizer'] = reg
        return output

    # -------------------------------------------------------- per iteration
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self.taps.start()
        if self.representation is not None:
            self.representation.start()
        for provider in self.providers.values():
            provider.reset()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        tasks = self.rule.tasks
        raw_totals = self.taps.stop()
        if self.representation is not None:
            self.representation.stop()
        values: List[Any] = [torch.nan if raw_totals[t] is None
                             else raw_totals[t] for t in tasks]
        signals = {s: p.collect() for s, p in self.providers.items()}
        for name, signal in signals.items():
            missing = set(tasks) - set(signal)
            if missing:
                raise ValueError(f'signal provider {name!r} returned no value '
                                 f'for tasks {sorted(missing)}')
            values.extend(signal[t] for t in tasks)
        # the iteration's one host read: the reduced values and the rule's
        # device state
        device_state = self.rule.device_state()
        reduced = reduce_finite_mean(values, self._device, device_state)
        if device_state:
            self.rule.set_device_values(reduced.extra)
        n = len(tasks)
        raw = dict(zip(tasks, reduced.mean[:n]))
        step_signals = {
            name: dict(zip(tasks, reduced.mean[n * (i + 1):n * (i + 2)]))
            for i, name in enumerate(signals)}
        for name, provider in self.providers.items():
            provider.watch(step_signals[name])
        self.rule.step(raw, nonfinite=dict(zip(tasks,
                                               reduced.num_nonfinite[:n])),
                       **step_signals)
        group = None if self._optimizer is None else find_param_group(
            self._optimizer, self.rule.parameters()[0])
        self.log.log(runner, self.rule, raw, group)

    def after_run(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.taps.detach()
        if self.representation is not None:
            self.representation.detach()
        for provider in self.providers.values():
            provider.detach()
        self._attached = False

    # ---------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self.checkpoint.save(self.rule, checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.checkpoint.load(runner, self.rule, checkpoint):
            self.log.reset(self.rule)
