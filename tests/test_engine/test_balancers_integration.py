"""The comparison balancers on real tiny detectors through mmengine's Runner:
every method trains and checkpoints, resume continues the exact weight
trajectory, and 2-rank gloo DDP keeps the weights identical on both ranks."""
import math
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner, load_checkpoint

from _helpers import dist_run, make_ddp_cfg, tiny_cfg
from mmdet.registry import MODELS
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.loss_weighting_hook import CHECKPOINT_KEY

FRCNN = 'configs/balancers/faster_rcnn_r50_{}_voc.py'
RETINA = 'configs/balancers/retinanet_r50_{}_voc.py'
# short windows so that the weights move within a few iterations
FAST = dict(DWA=dict(interval=1), GuidedLoss=dict(warmup=2))


def _cfg(config, work_dir, data, iters, flip=True, **kw):
    cfg = tiny_cfg(config, str(work_dir), data, max_iters=iters, **kw)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # runners built within one second would share a MessageHub by name
    cfg.experiment_name = str(work_dir).replace('/', '_')
    if not flip:  # a resumed run must see the very same images
        pipeline = cfg.train_dataloader.dataset.pipeline
        pipeline[:] = [t for t in pipeline if t['type'] != 'RandomFlip']
    for hook in cfg.get('custom_hooks', []):
        if hook['type'] == 'LossWeightingHook':
            hook.rule.update(FAST.get(hook.rule.type, {}))
    return cfg


def _hook(runner) -> LossWeightingHook:
    return next(h for h in runner.hooks if isinstance(h, LossWeightingHook))


def _weights_history(runner, hook):
    hub = runner.message_hub
    return {t: list(hub.get_scalar(f'train/{hook.name}/weight_{t}')._log_history)
            for t in hook.rule.tasks}


@pytest.mark.parametrize('config', [
    FRCNN.format('dwa'), RETINA.format('dtp'), FRCNN.format('dtp'),
    RETINA.format('guided'), FRCNN.format('uncertainty'),
    FRCNN.format('gradnorm'), RETINA.format('tdb')])
def test_method_trains_logs_and_checkpoints(config, tmp_path, tiny_data):
    iters = 2
    runner = Runner.from_cfg(_cfg(config, tmp_path, tiny_data, iters))
    runner.train()
    hook = _hook(runner)
    rule = hook.rule
    assert rule.num_steps == iters
    history = _weights_history(runner, hook)
    assert all(len(v) == iters for v in history.values())
    assert all(math.isfinite(w) for v in history.values() for w in v)
    # every method but uncertainty's slowly learnt log-variances moves
    assert any(len(set(v)) > 1 or v[0] != 1.0 for v in history.values())
    for signal in rule.required_signals:
        key = dict(kpi='kpi', grad_norm='grad_norm')
        if signal in key:
            assert all(math.isfinite(runner.message_hub.get_scalar(
                f'train/{hook.name}/{key[signal]}_{t}').current())
                for t in rule.tasks)
    ckpt = torch.load(osp.join(str(tmp_path), f'iter_{iters}.pth'),
                      weights_only=False)
    assert ckpt[CHECKPOINT_KEY][hook.name] == rule.state_dict()
    # plain mmdet (no custom hooks) loads the weights strictly
    plain = MODELS.build(runner.cfg.model)
    load_checkpoint(plain, osp.join(str(tmp_path), f'iter_{iters}.pth'),
                    strict=True)


def test_sample_level_config_trains(tmp_path, tiny_data):
    # RPN: mmdet's FocalLoss, RoI head: SampleLevelBalancedLoss
    config = FRCNN.format('sample_level')
    runner = Runner.from_cfg(_cfg(config, tmp_path, tiny_data, 2))
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)


@pytest.mark.parametrize('method', ['tdb', 'uncertainty'])
def test_resume_continues_the_weight_trajectory(method, tmp_path, tiny_data):
    # RetinaNet: no random sampler, so a resumed run sees identical losses
    config = RETINA.format(method)
    full = Runner.from_cfg(_cfg(config, tmp_path / 'full', tiny_data, 3,
                                flip=False))
    full.train()
    first = Runner.from_cfg(_cfg(config, tmp_path / 'part', tiny_data, 1,
                                 flip=False))
    first.train()
    cfg = _cfg(config, tmp_path / 'resumed', tiny_data, 3, flip=False)
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'part' / 'iter_1.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    a, b = _hook(full), _hook(resumed)
    assert b.rule.num_steps == 3
    for task in a.rule.tasks:
        assert b.rule.weights[task] == pytest.approx(a.rule.weights[task],
                                                     rel=1e-6, abs=1e-9)
    hist_a, hist_b = _weights_history(full, a), _weights_history(resumed, b)
    for task in a.rule.tasks:
        assert hist_b[task][-2:] == pytest.approx(hist_a[task][-2:],
                                                  rel=1e-6, abs=1e-9)


def _ddp_worker(rank, world_size, config, work_dir, data):
    # a forked child must not enter the OpenMP pool its parent used (libgomp
    # is not fork-safe: DDP's first broadcast hangs after an in-process run)
    torch.set_num_threads(1)
    cfg = make_ddp_cfg(_cfg(config, f'{work_dir}/r{rank}', data, 2))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = _hook(runner)
    raw = runner.message_hub.get_scalar(f'train/{hook.name}/raw_cls')
    return hook.rule.state_dict(), hook.rule.weights, raw.current()


@pytest.mark.parametrize('config', [RETINA.format('tdb'),
                                    FRCNN.format('uncertainty')])
def test_ddp_ranks_hold_identical_weights(config, tmp_path, tiny_data):
    (s0, w0, r0), (s1, w1, r1) = dist_run(_ddp_worker, 2, config,
                                          str(tmp_path), tiny_data)
    assert s0 == s1 and w0 == w1 and r0 == r1
    assert all(math.isfinite(w) for w in w0.values())
