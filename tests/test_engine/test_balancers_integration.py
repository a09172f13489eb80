"""The comparison balancers (and the rules over TorchJD: FAMO, RLW, GLS,
IMTL-L, STCH; the gradient aggregators under DDP) on real tiny detectors through mmengine's Runner:
every method trains and checkpoints, resume continues the exact weight
trajectory and rule state, and 2-rank gloo DDP keeps the rule state identical
on both ranks. Faster R-CNN and RetinaNet alternate across the methods."""
import math
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner, load_checkpoint

from _helpers import dist_run, make_ddp_cfg, tiny_cfg
from mmdet.registry import MODELS
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.loss_weighting_hook import CHECKPOINT_KEY
from mmdet_alwa.utils import safe_checkpoint_loading

FRCNN = 'configs/balancers/faster_rcnn_r50_{}_voc.py'
RETINA = 'configs/balancers/retinanet_r50_{}_voc.py'
# short windows so that the weights move within a few iterations
FAST = dict(DWA=dict(interval=1), GuidedLoss=dict(warmup=2))
# method: (config, iterations, resume after, rule knobs); the resumed part
# holds an update that reads the restored state
RESUME_RUNS = {
    'dwa': (FRCNN, 4, 3, dict(interval=2)),  # resumed mid-window
    'dtp': (RETINA, 2, 1, {}),
    'guided': (FRCNN, 2, 1, {}),  # mode='rpn'
    'uncertainty': (RETINA, 2, 1, {}),
    'gradnorm': (FRCNN, 2, 1, {}),
    'tdb': (RETINA, 2, 1, {}),
    # the loss-only rules over TorchJD, on all four Faster R-CNN losses;
    # FAMO resumed between its logits' updates (one pending in the state)
    'famo': (FRCNN, 4, 2, {}),
    'rlw': (FRCNN, 2, 1, {}),
    'gls': (FRCNN, 2, 1, {}),
    'imtl_l': (FRCNN, 2, 1, {}),
    'stch': (FRCNN, 2, 1, {}),
}
# the other detector of each method (guided: mode='one_stage', dtp: the
# plain accuracy KPI)
DDP_RUNS = {'dwa': RETINA, 'dtp': FRCNN, 'guided': RETINA,
            'uncertainty': FRCNN, 'gradnorm': RETINA, 'tdb': FRCNN,
            'famo': RETINA, 'rlw': RETINA, 'gls': RETINA, 'imtl_l': RETINA,
            'stch': RETINA,
            # the gradient aggregators (UPGrad and MGDA: test_gramian_ddp.py,
            # against the ranks' own Gramians)
            'pcgrad': RETINA, 'imtl_g': RETINA, 'aligned_mtl': RETINA,
            'dualproj': RETINA, 'cagrad': RETINA}


def _cfg(config, work_dir, data, iters, flip=True, rule=None, **kw):
    cfg = tiny_cfg(config, str(work_dir), data, max_iters=iters, **kw)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    # runners built within one second would share a MessageHub by name
    cfg.experiment_name = str(work_dir).replace('/', '_')
    if not flip:  # a resumed run must see the very same images
        pipeline = cfg.train_dataloader.dataset.pipeline
        pipeline[:] = [t for t in pipeline if t['type'] != 'RandomFlip']
    for hook in cfg.default_hooks.values():
        if hook and hook['type'] == 'LossWeightingHook':
            hook.rule.update(FAST.get(hook.rule.type, {}), **(rule or {}))
    return cfg


class _SeedEachIter(Hook):
    """Seed torch before every iteration: mmengine does not checkpoint the
    RNG, and Faster R-CNN's samplers draw from it, so without this a resumed
    run would sample other anchors/proposals than the uninterrupted one."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        torch.manual_seed(runner.iter)


def _hook(runner) -> LossWeightingHook:
    return next(h for h in runner.hooks if isinstance(h, LossWeightingHook))


def _weights_history(runner, hook):
    hub = runner.message_hub
    return {t: list(hub.get_scalar(
        f'train/{hook.name}/weight_{t}')._log_history)
        for t in hook.rule.tasks}


def _assert_moved(history):
    # uncertainty starts at 1/2, the others at 1
    assert any(len(set(v)) > 1 or v[0] != 1.0 for v in history.values())


def _assert_same(a, b, where='state'):
    """Equal nested rule states, floats up to rounding."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f'{where}[{key!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{where}[{i}]')
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-9), where
    else:
        assert a == b, where


@pytest.fixture(scope='module', params=list(RESUME_RUNS))
def full_run(request, tmp_path_factory, tiny_data):
    """An uninterrupted run of one method, checkpointed every iteration."""
    config, iters, _, rule = RESUME_RUNS[request.param]
    work_dir = tmp_path_factory.mktemp(f'full_{request.param}')
    runner = Runner.from_cfg(_cfg(config.format(request.param), work_dir,
                                  tiny_data, iters, flip=False, rule=rule,
                                  checkpoint_interval=1))
    runner.register_hook(_SeedEachIter())
    runner.train()
    return request.param, runner


def test_method_trains_logs_and_checkpoints(full_run):
    method, runner = full_run
    iters = RESUME_RUNS[method][1]
    hook = _hook(runner)
    rule = hook.rule
    hub = runner.message_hub
    assert rule.num_steps == iters
    history = _weights_history(runner, hook)
    assert all(len(v) == iters for v in history.values())
    assert all(math.isfinite(w) for v in history.values() for w in v)
    _assert_moved(history)
    for signal in rule.required_signals:
        if signal in ('kpi', 'grad_norm'):
            assert all(math.isfinite(hub.get_scalar(
                f'train/{hook.name}/{signal}_{t}').current())
                for t in rule.tasks)
    if getattr(rule, 'mode', None) == 'rpn':  # Guided: w_cls = L_reg / L_cls
        raw = {t: hub.get_scalar(f'train/{hook.name}/raw_{t}').current()
               for t in rule.tasks}
        assert rule.weights['cls'] == pytest.approx(raw['reg'] / raw['cls'])
    path = osp.join(runner.work_dir, f'iter_{iters}.pth')
    ckpt = torch.load(path, weights_only=False)
    assert ckpt[CHECKPOINT_KEY][hook.name] == rule.state_dict()
    # plain mmdet (no custom hooks) loads the weights strictly (under
    # torch >= 2.6 with the allow-list of mmengine's message hub)
    with safe_checkpoint_loading():
        load_checkpoint(MODELS.build(runner.cfg.model), path, strict=True)


def test_resume_continues_the_weight_trajectory(full_run, tmp_path,
                                                tiny_data):
    method, full = full_run
    config, iters, resume_at, rule = RESUME_RUNS[method]
    cfg = _cfg(config.format(method), tmp_path, tiny_data, iters, flip=False,
               rule=rule)
    cfg.resume = True
    cfg.load_from = osp.join(full.work_dir, f'iter_{resume_at}.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.register_hook(_SeedEachIter())
    with safe_checkpoint_loading():  # as tools/train.py --resume
        resumed.train()
    a, b = _hook(full), _hook(resumed)
    _assert_same(a.rule.state_dict(), b.rule.state_dict())
    # the weighted total loss shows the restored weights in use (Guided's
    # next ratio does not depend on them)
    hist_a, hist_b = (dict(_weights_history(r, h), loss=list(
        r.message_hub.get_scalar('train/loss')._log_history))
        for r, h in ((full, a), (resumed, b)))
    for key in (*a.rule.tasks, 'loss'):
        assert hist_b[key][resume_at:] == pytest.approx(
            hist_a[key][resume_at:], rel=1e-6, abs=1e-9), key


def test_sample_level_config_trains(tmp_path, tiny_data):
    # RPN: mmdet's FocalLoss, RoI head: SampleLevelBalancedLoss
    config = FRCNN.format('sample_level')
    runner = Runner.from_cfg(_cfg(config, tmp_path, tiny_data, 2))
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)


def _ddp_worker(rank, world_size, config, work_dir, data):
    # a forked child must not enter the OpenMP pool its parent used (libgomp
    # is not fork-safe: DDP's first broadcast hangs after an in-process run)
    torch.set_num_threads(1)
    cfg = make_ddp_cfg(_cfg(config, f'{work_dir}/r{rank}', data, 2))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = _hook(runner)
    hub = runner.message_hub
    return dict(state=hook.rule.state_dict(), weights=hook.rule.weights,
                history=_weights_history(runner, hook),
                raw=hub.get_scalar(f'train/{hook.name}/raw_cls').current(),
                local_loss=hub.get_scalar('train/loss').current())


@pytest.mark.parametrize('method', list(DDP_RUNS))
def test_ddp_ranks_hold_identical_weights(method, tmp_path, tiny_data):
    r0, r1 = dist_run(_ddp_worker, 2, DDP_RUNS[method].format(method),
                      str(tmp_path), tiny_data)
    # the ranks saw other images, so equal states come from the all-reduce
    assert r0['local_loss'] != r1['local_loss']
    for key in ('state', 'weights', 'history', 'raw'):
        assert r0[key] == r1[key], key
    assert r0['state']['num_steps'] == 2
    assert all(math.isfinite(w) for w in r0['weights'].values())
    _assert_moved(r0['history'])
