"""The non-finite loss guard: unit tests on a linear model, then real tiny
Faster R-CNN runs through mmengine's Runner with a planted NaN loss (and the
ALWA balancer attached, whose state must stay finite)."""
import copy
import math

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from _helpers import tiny_cfg
from mmdet.registry import OPTIM_WRAPPERS
from mmdet_alwa.engine.optimizers import (NonFiniteLossError,
                                          amp_optim_wrapper_type)

CONFIG = 'configs/_base_/faster_rcnn_r50_voc.py'


def _wrapper(model, **kw):
    return OPTIM_WRAPPERS.build(dict(
        type='NonFiniteGuardOptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        **kw))


def _state(model, wrapper):
    return (copy.deepcopy(model.state_dict()),
            copy.deepcopy(wrapper.optimizer.state_dict()['state']))


def _assert_same(a, b):
    for key in a[0]:
        assert torch.equal(a[0][key], b[0][key]), key
    for idx, state in a[1].items():
        for key, value in state.items():
            assert torch.equal(value, b[1][idx][key]), (idx, key)


def test_skip_leaves_params_and_optimizer_state(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    wrapper = _wrapper(model, nonfinite_policy='skip', max_consecutive_skips=2)
    x = torch.randn(4, 3)
    wrapper.update_params(model(x).pow(2).mean())  # momentum buffers exist
    before = _state(model, wrapper)
    wrapper.update_params(model(x).sum() * math.nan)
    _assert_same(before, _state(model, wrapper))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert (wrapper.num_skipped, wrapper.consecutive_skips) == (1, 1)
    wrapper.update_params(model(x).pow(2).mean())  # finite: steps again
    assert not torch.equal(before[0]['weight'], model.weight)
    assert wrapper.consecutive_skips == 0
    # no hook attached: the wrapper raises itself, naming the iteration
    MessageHub.get_current_instance().update_info('iter', 6)
    wrapper.update_params(model(x).sum() * math.inf)
    with pytest.raises(NonFiniteLossError, match=r'iteration 7 .*2 consec'):
        wrapper.update_params(model(x).sum() * math.nan)


def test_bad_arguments_and_amp_mapping():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match='nonfinite_policy'):
        _wrapper(model, nonfinite_policy='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips'):
        _wrapper(model, max_consecutive_skips=0)
    assert amp_optim_wrapper_type('NonFiniteGuardOptimWrapper') == \
        'NonFiniteGuardAmpOptimWrapper'
    assert amp_optim_wrapper_type('OptimWrapper') == 'AmpOptimWrapper'
    with pytest.raises(ValueError, match='no AMP variant'):
        amp_optim_wrapper_type('ZeroRedundancyOptimizer')


class _PlantNaN(Hook):
    """Makes the RPN box loss NaN at the given (0-based) iterations and
    snapshots parameters + optimizer state around them."""

    # before LossWeightingHook: its loss hook must see the NaN
    priority = 'VERY_HIGH'

    def __init__(self, iters):
        self.iters = set(iters)
        self.armed = False
        self.snapshots = {}

    def before_run(self, runner):
        loss = runner.model.rpn_head.loss_bbox
        loss.register_forward_hook(
            lambda m, a, out: out * math.nan if self.armed else None)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.armed = runner.iter in self.iters
        if self.armed:
            self.snapshots[runner.iter] = [_state(
                runner.model, runner.optim_wrapper)]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.armed:
            self.snapshots[runner.iter].append(
                _state(runner.model, runner.optim_wrapper))
        self.armed = False


def _runner(tiny_data, tmp_path, policy, iters, max_iters, **kw):
    cfg = tiny_cfg(CONFIG, str(tmp_path / policy), tiny_data,
                   max_iters=max_iters, val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.optim_wrapper.type = 'NonFiniteGuardOptimWrapper'
    cfg.optim_wrapper.nonfinite_policy = policy
    cfg.optim_wrapper.update(kw)
    cfg.default_hooks.nonfinite_guard = dict(type='NonFiniteGuardHook')
    cfg.default_hooks.alwa = dict(
        type='LossWeightingHook', name='alwa',
        rule=dict(type='ALWA', variant=1, interval=2),
        losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox'))
    runner = Runner.from_cfg(cfg)
    plant = _PlantNaN(iters)
    runner.register_hook(plant)
    return runner, plant


def _alwa(runner):
    return next(h for h in runner.hooks if type(h).__name__ ==
                'LossWeightingHook').rule


def test_raise_names_iteration_keys_and_images(tiny_data, tmp_path):
    runner, plant = _runner(tiny_data, tmp_path, 'raise', [1], 3)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'iteration 2 ' in msg and 'loss_rpn_bbox' in msg, msg
    assert 'loss_rpn_cls' not in msg
    files = msg.split('images of the batch: ')[1]
    assert files.count('.png') == 2 and tiny_data in files, msg
    # raised before the step: the weights are those before the iteration
    _assert_same(plant.snapshots[1][0],
                 _state(runner.model, runner.optim_wrapper))
    assert all(math.isfinite(v) for v in _alwa(runner).weights.values())


def test_skip_continues_counts_then_raises(tiny_data, tmp_path):
    runner, plant = _runner(tiny_data, tmp_path, 'skip', [1, 3, 4], 6,
                            max_consecutive_skips=2)
    with pytest.raises(NonFiniteLossError,
                       match=r'iteration 5 .*2 consecutive .*3 skipped'):
        runner.train()
    for it in (1, 3):  # the skipped steps changed nothing, training went on
        _assert_same(*plant.snapshots[it])
    assert not torch.equal(plant.snapshots[1][1][0]['rpn_head.rpn_reg.weight'],
                           plant.snapshots[3][0][0]['rpn_head.rpn_reg.weight'])
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert runner.message_hub.get_scalar(
        'train/nonfinite_skips').current() == 2
    rule = _alwa(runner)
    # the guard hook raised at iteration 5 before the balancer stepped
    assert rule.num_nonfinite == {'cls': 0, 'reg': 2}
    state = rule.state_dict()
    assert math.isfinite(state['alpha']) and all(
        math.isfinite(v) for w in state['windows'].values() for v in w)
