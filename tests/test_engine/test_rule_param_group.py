"""A rule's learnable parameters (uncertainty weighting's log-variances)
follow the runner's schedule exactly: mmdet's schedule_1x (LinearLR warm-up
with start_factor 0.001, then MultiStepLR), a cosine schedule, and a resume
in the middle of the warm-up, through mmengine's Runner. The oracle is each
schedule's closed form, written out here."""
import math
import os.path as osp

import mmdet
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from _helpers import tiny_cfg
from mmdet_alwa.engine.hooks.loss_weighting import extend_schedulers
from mmdet_alwa.utils import safe_checkpoint_loading

CONFIG = 'configs/balancers/faster_rcnn_r50_uncertainty_voc.py'
MODEL_LR, RULE_LR = 0.01, 0.05


def weighting_hook(cfg):
    """The LossWeightingHook entry of a config (in its default_hooks)."""
    return next(h for h in cfg.default_hooks.values()
                if h and h['type'] == 'LossWeightingHook')


def _cfg(work_dir, data, schedule, max_iters=6, **kw):
    cfg = tiny_cfg(CONFIG, str(work_dir), data, max_iters=max_iters, **kw)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.experiment_name = str(work_dir).replace('/', '_')
    cfg.optim_wrapper.optimizer.lr = MODEL_LR
    weighting_hook(cfg).param_group = dict(lr=RULE_LR, weight_decay=0.0)
    cfg.param_scheduler = schedule
    return cfg


def _lrs(runner):
    """Per iteration: (the model's lr, the rule group's lr) in use."""
    hub = runner.message_hub
    return (list(hub.get_scalar('train/lr')._log_history),
            list(hub.get_scalar('train/uncertainty/lr')._log_history))


def linear(i, start, end):
    """mmengine LinearLR's factor at step i (begin=0): it rises linearly
    from ``start`` to 1 at step ``end - 1`` and stays there."""
    return start + (1 - start) * min(i, end - 1) / (end - 1)


def test_schedule_1x_warmup_then_steps(tiny_data, tmp_path):
    # mmdet's schedule_1x, shortened: warm-up over 3 iterations instead of
    # 500, a x0.1 step after epoch 2 instead of 8 and 11 (2 iterations an
    # epoch: 4 of the 8 tiny images)
    schedule = Config.fromfile(osp.join(
        osp.dirname(mmdet.__file__),
        '.mim/configs/_base_/schedules/schedule_1x.py')).param_scheduler
    assert schedule[0].type == 'LinearLR' and \
        schedule[0].start_factor == 0.001
    schedule[0].end = 3
    schedule[1].update(end=3, milestones=[2])
    cfg = _cfg(tmp_path, tiny_data, schedule)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3,
                         val_interval=100)
    cfg.train_dataloader.dataset.indices = 4
    runner = Runner.from_cfg(cfg)
    runner.train()
    model, rule = _lrs(runner)
    assert len(rule) == 6
    for i in range(6):
        factor = linear(i, 0.001, 3) * (0.1 if i // 2 >= 2 else 1.0)
        assert model[i] == pytest.approx(MODEL_LR * factor, rel=1e-9), i
        assert rule[i] == pytest.approx(RULE_LR * factor, rel=1e-9), i
    group = runner.optim_wrapper.optimizer.param_groups[-1]
    assert group['params'] == [runner.hooks[[
        type(h).__name__ for h in runner.hooks].index(
            'LossWeightingHook')].rule.log_vars]


def test_cosine_with_eta_min(tiny_data, tmp_path):
    # eta_min is absolute: the rule group's lr is not the model's times a
    # common factor
    eta_min, t_max = 1e-3, 5
    schedule = [dict(type='CosineAnnealingLR', T_max=t_max, eta_min=eta_min,
                     by_epoch=False, begin=0, end=t_max)]
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, schedule, 5))
    runner.train()
    model, rule = _lrs(runner)
    for i in range(5):
        cos = (1 + math.cos(math.pi * i / t_max)) / 2
        assert model[i] == pytest.approx(
            eta_min + (MODEL_LR - eta_min) * cos, rel=1e-9), i
        assert rule[i] == pytest.approx(
            eta_min + (RULE_LR - eta_min) * cos, rel=1e-9), i


WARMUP = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
               end=4),
          dict(type='MultiStepLR', by_epoch=False, begin=0, end=6,
               milestones=[5], gamma=0.1)]


def _warmup_factor(i):
    return linear(i, 0.001, 4) * (0.1 if i >= 5 else 1.0)


def test_resume_in_the_middle_of_warmup(tiny_data, tmp_path):
    full = Runner.from_cfg(_cfg(tmp_path / 'full', tiny_data, WARMUP, 6,
                                checkpoint_interval=2))
    full.train()
    cfg = _cfg(tmp_path / 'resumed', tiny_data, WARMUP, 6)
    cfg.resume = True
    cfg.load_from = osp.join(str(tmp_path / 'full'), 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    with safe_checkpoint_loading():  # as tools/train.py --resume
        resumed.train()
    _, rule_full = _lrs(full)
    _, rule_resumed = _lrs(resumed)
    # the message hub is resumed too: iterations 1-2 come from the
    # checkpoint, 3-6 from the resumed run
    assert len(rule_full) == len(rule_resumed) == 6
    for i in range(6):
        expected = RULE_LR * _warmup_factor(i)
        assert rule_full[i] == pytest.approx(expected, rel=1e-9), i
        assert rule_resumed[i] == pytest.approx(expected, rel=1e-9), i


# ------------------------------------- extend_schedulers, no Runner needed
def _optimizer(kind='SGD'):
    model = torch.nn.Linear(2, 2)
    if kind == 'SGD':
        return torch.optim.SGD(model.parameters(), lr=MODEL_LR, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=MODEL_LR,
                            betas=(0.9, 0.999))


def test_momentum_schedule_on_adam_betas():
    """A momentum scheduler on Adam schedules beta_0 of the new group too
    (LinearMomentum from 0.5 x beta_0 to beta_0 over 4 steps)."""
    from mmengine.optim.scheduler import LinearMomentum
    optimizer = _optimizer('Adam')
    scheduler = LinearMomentum(optimizer, start_factor=0.5, by_epoch=False,
                               end=4)
    rule_param = torch.nn.Parameter(torch.zeros(2))
    optimizer.add_param_group(dict(params=[rule_param], betas=(0.8, 0.99)))
    extend_schedulers(optimizer, [scheduler], 'test')
    for i in range(6):
        factor = linear(i, 0.5, 4)
        assert optimizer.param_groups[0]['betas'][0] == pytest.approx(
            0.9 * factor), i
        assert optimizer.param_groups[1]['betas'] == pytest.approx(
            (0.8 * factor, 0.99)), i
        optimizer.step()
        scheduler.step()


def test_unsupported_scheduler_is_an_error():
    from mmengine.optim.scheduler import OneCycleLR
    optimizer = _optimizer()
    scheduler = OneCycleLR(optimizer, eta_max=0.1, total_steps=10,
                           by_epoch=False)
    optimizer.add_param_group(dict(params=[torch.nn.Parameter(
        torch.zeros(2))]))
    with pytest.raises(ValueError, match='cannot extend OneCycleLR'):
        extend_schedulers(optimizer, [scheduler], 'test')


def test_warmup_then_cosine_from_its_begin():
    """mmdet's RTMDet-style schedule: LinearLR warm-up, then a
    CosineAnnealingLR that begins when the warm-up ends (no construction
    step to replay for it), stepped as ParamSchedulerHook steps them."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    optimizer = _optimizer()
    eta_min = 1e-3
    schedulers = [
        LinearLR(optimizer, start_factor=0.001, by_epoch=False, end=3),
        CosineAnnealingLR(optimizer, T_max=4, eta_min=eta_min,
                          by_epoch=False, begin=3, end=7)]
    optimizer.add_param_group(dict(params=[torch.nn.Parameter(
        torch.zeros(2))], lr=RULE_LR))
    extend_schedulers(optimizer, schedulers, 'test')
    for i in range(8):
        for group, base in zip(optimizer.param_groups, (MODEL_LR, RULE_LR)):
            if i < 3:
                expected = base * linear(i, 0.001, 3)
            else:
                cos = (1 + math.cos(math.pi * min(i - 3, 3) / 4)) / 2
                expected = eta_min + (base - eta_min) * cos
            assert group['lr'] == pytest.approx(expected, rel=1e-9), (i, base)
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
