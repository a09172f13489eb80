"""The param group of a rule's learnable parameters (uncertainty weighting's
log-variances) in the runner's optimizer, following the runner's schedule.

mmengine builds the parameter schedulers before any hook's ``before_run``,
and every scheduler's constructor takes its first step at once (LinearLR:
``lr = initial_lr * start_factor``). Schedulers are chained: each step
multiplies a group's *current* value. A group added later would start from
its un-warmed value and then be multiplied up with the others (mmdet's
``schedule_1x``: up to 1000x its lr at the end of warm-up). So after adding
the group, :func:`add_rule_param_group` extends every scheduler to it as if
the group had been there when the schedulers were built: it appends the
group's ``initial_<param>`` to each scheduler's ``base_values`` and replays,
in the order they were built, the one construction step of each scheduler
for the new group only (schedulers compute every group independently). From
then on the new group follows the schedule exactly, and a resume restores it
through the optimizer's and the schedulers' own state dicts.

Under DDP the parameters live outside the DDP module, so their gradients are
averaged across ranks by a post-accumulate-grad hook.
"""
from typing import Any, List, Mapping, Optional, Sequence

import torch
from mmengine import dist
from mmengine.optim import OptimWrapper

__all__ = ['add_rule_param_group', 'find_param_group',
           'extend_schedulers']


def find_param_group(optimizer: torch.optim.Optimizer,
                     param: torch.Tensor) -> Optional[dict]:
    """The param group of ``optimizer`` holding ``param`` (loading an
    optimizer state replaces the group dicts, so keep the parameter, not the
    dict)."""
    return next((g for g in optimizer.param_groups
                 if any(p is param for p in g['params'])), None)


def add_rule_param_group(runner, params: Sequence[torch.nn.Parameter],
                         options: Mapping[str, Any], device: torch.device,
                         owner: str) -> Optional[torch.optim.Optimizer]:
    """Add ``params`` as a param group (optimizer ``options``) of the
    runner's optimizer and extend the runner's schedulers to it.

    Returns the optimizer, or ``None`` when the runner has no optimizer
    (validation or test only).
    """
    optim_wrapper = runner.optim_wrapper
    if not isinstance(optim_wrapper, OptimWrapper):
        if isinstance(optim_wrapper, Mapping):  # val/test: no optimizer
            return None
        raise ValueError(
            f'{owner} has learnable parameters and needs a single '
            f'OptimWrapper, got {type(optim_wrapper).__name__}')
    schedulers = getattr(runner, 'param_schedulers', None)
    if isinstance(schedulers, Mapping):
        raise ValueError(f'{owner}: one optimizer expected, got schedulers '
                         f'for {sorted(schedulers)}')
    for p in params:
        p.data = p.data.to(device)
        if dist.get_world_size() > 1:
            p.register_post_accumulate_grad_hook(_average_grad)
    optimizer = optim_wrapper.optimizer
    optimizer.add_param_group(dict(options, params=list(params)))
    extend_schedulers(optimizer, schedulers or [], owner)
    return optimizer


def _average_grad(param: torch.Tensor) -> None:
    # NCCL: the gradient is on the model's device (the parameters were moved
    # there above), a CUDA tensor under NCCL, a CPU one under gloo
    dist.all_reduce(param.grad, op='mean')


def extend_schedulers(optimizer: torch.optim.Optimizer,
                      schedulers: List[Any], owner: str) -> None:
    """Make the last param group of ``optimizer`` follow ``schedulers`` (as
    built by the runner, before any training step) from the start.

    A scheduler sees the groups of what it was built on: with a
    ``paramwise_cfg`` mmengine's ``OptimWrapper.param_groups`` appends its
    ``base_param_settings``, so the new group's place is found by identity.
    """
    group = optimizer.param_groups[-1]
    for scheduler in schedulers:
        name = scheduler.param_name
        groups = scheduler.optimizer.param_groups
        index = next((i for i, g in enumerate(groups) if g is group), None)
        if index is None or len(scheduler.base_values) != len(groups) - 1:
            raise ValueError(
                f'{owner}: {type(scheduler).__name__} holds '
                f'{len(scheduler.base_values)} base values for '
                f'{len(groups) - 1} param groups')
        if getattr(scheduler, 'use_betas', False):  # Adam's momentum
            group['momentum'] = group['betas'][0]
        if name not in group:
            raise ValueError(
                f'{owner}: {type(scheduler).__name__} schedules {name!r}, '
                f'which the rule\'s param group does not have')
        group.setdefault(f'initial_{name}', group[name])
        scheduler.base_values.insert(index, group[f'initial_{name}'])
        # the construction step (mmengine: step() in __init__), if it acted
        if scheduler._global_step == 0 and \
                scheduler.begin <= 0 < scheduler.end:
            try:
                value = scheduler._get_value()[index]
            except (KeyError, IndexError) as e:
                raise ValueError(
                    f'{owner}: cannot extend {type(scheduler).__name__} to '
                    f'the rule\'s param group ({e!r}); use a chainable '
                    f'scheduler (LinearLR, MultiStepLR, CosineAnnealingLR, '
                    f'...)') from e
            group[name] = value
            if getattr(scheduler, 'use_betas', False):
                group['betas'] = (value, group['betas'][1])
        scheduler._last_value = [g[name] for g in groups]
