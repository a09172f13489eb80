"""LossWeightingHook: real mmdet training through mmengine's Runner."""
import logging
import math
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from mmdet.registry import MODELS
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.signals import (SIGNAL_PROVIDERS,
                                             SignalProvider,
                                             register_signal_provider)
from mmdet_alwa.utils import safe_checkpoint_loading
from mmdet_alwa.weighting import RULES, BaseWeighting, register_rule

from _helpers import dist_run, make_ddp_cfg, tiny_cfg

FRCNN = 'configs/alwa/faster_rcnn_r50_alwa1_voc.py'
RETINA_CIOU = 'configs/alwa/retinanet_r50_alwa1_ciou_voc.py'


def _cfg(config, work_dir, data, max_iters, interval=2, init_weight=1.0,
         checkpoint_interval=None, deterministic=False, **rule):
    cfg = tiny_cfg(config, str(work_dir), data, max_iters=max_iters,
                   checkpoint_interval=checkpoint_interval)
    cfg.default_hooks.alwa.rule.update(interval=interval,
                                       init_weight=init_weight, **rule)
    # no validation (these tests are about training), no TensorBoard thread
    # (dist_run forks this process)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    if deterministic:  # identical data on resume: no random flip
        pipeline = cfg.train_dataloader.dataset.pipeline
        pipeline[:] = [t for t in pipeline if t['type'] != 'RandomFlip']
    return cfg


def _hook(runner) -> LossWeightingHook:
    return next(h for h in runner.hooks if isinstance(h, LossWeightingHook))


def _history(runner, key):
    return runner.message_hub.get_scalar(f'train/alwa/{key}').data[0].tolist()


def _probe_grads(runner, paths):
    """d(total loss)/d(raw loss output) of each call, by iteration: a forward
    hook registered before the weighting hook's sees the raw output."""
    grads = {task: {} for task in paths}
    for task, path in paths.items():
        module = runner.model.get_submodule(path)

        def fwd(module, args, out, task=task):
            it = runner.iter + 1
            out.register_hook(lambda g, it=it: grads[task].setdefault(
                it, []).append(g.item()))

        module.register_forward_hook(fwd)
    return grads


def _train(cfg, probe=None):
    runner = Runner.from_cfg(cfg)
    grads = _probe_grads(runner, probe) if probe else None
    with safe_checkpoint_loading():  # as tools/train.py (resume)
        runner.train()
    return runner, grads


def _check_trajectory(runner, grads, interval, init_weight, n):
    alphas = _history(runner, 'alpha')
    assert len(alphas) == n
    # α changes only after steps C, 2C, ...
    prev = 1.0
    for i, alpha in enumerate(alphas, start=1):
        if i % interval:
            assert alpha == prev, (i, alphas)
        prev = alpha
    assert len(set(alphas)) > 1
    # back-propagated: α·λ0·raw for cls, λ0·raw for reg, at every level
    in_effect = [1.0] + alphas[:-1]
    for i in range(1, n + 1):
        np.testing.assert_allclose(
            grads['cls'][i], in_effect[i - 1] * init_weight, rtol=1e-6)
        np.testing.assert_allclose(grads['reg'][i], init_weight, rtol=1e-6)
    return in_effect


@pytest.fixture(scope='module')
def frcnn_run(tiny_data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('frcnn')
    cfg = _cfg(FRCNN, work_dir, tiny_data, max_iters=6, interval=3,
               init_weight=0.5)
    runner, grads = _train(cfg, dict(cls='rpn_head.loss_cls',
                                     reg='rpn_head.loss_bbox'))
    return runner, grads, str(work_dir)


def test_faster_rcnn_alpha_and_backprop(frcnn_run):
    runner, grads, _ = frcnn_run
    in_effect = _check_trajectory(runner, grads, 3, 0.5, 6)
    # the RPN's logged loss is the weighted one (one call per FPN level)
    assert all(len(g) == 5 for g in grads['cls'].values())
    raw_cls, raw_reg = _history(runner, 'raw_cls'), _history(runner, 'raw_reg')
    logged_cls = runner.message_hub.get_scalar(
        'train/loss_rpn_cls').data[0].tolist()
    logged_reg = runner.message_hub.get_scalar(
        'train/loss_rpn_bbox').data[0].tolist()
    np.testing.assert_allclose(
        logged_cls, np.array(in_effect) * 0.5 * raw_cls, rtol=1e-5)
    np.testing.assert_allclose(logged_reg, 0.5 * np.array(raw_reg),
                               rtol=1e-5)
    # window statistics are logged for the plot tool
    assert _history(runner, 'cls_mean')[-1] > 0
    rule = _hook(runner).rule
    assert rule.num_steps == 6 and rule.num_windows == 2


def _plain_model(baseline, data, work_dir):
    cfg = tiny_cfg(baseline, str(work_dir), data)
    cfg.default_hooks.pop('alwa', None)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('run,baseline', [
    ('frcnn_run', 'configs/alwa/faster_rcnn_r50_baseline_voc.py'),
    ('retina_run', 'configs/alwa/retinanet_r50_baseline_ciou_voc.py')])
def test_checkpoint_loads_into_plain_mmdet(run, baseline, request,
                                           tiny_data, tmp_path):
    runner, _, work_dir = request.getfixturevalue(run)
    ckpt = torch.load(osp.join(work_dir, f'iter_{runner.iter}.pth'),
                      map_location='cpu', weights_only=False)
    assert ckpt['mmdet_alwa']['alwa'] == _hook(runner).rule.state_dict()
    model = _plain_model(baseline, tiny_data, tmp_path)
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.fixture(scope='module')
def retina_run(tiny_data, tmp_path_factory):
    """RetinaNet + CIoU (reg_decoded_bbox) + ALWA_1: 2C iterations."""
    work_dir = tmp_path_factory.mktemp('retina')
    cfg = _cfg(RETINA_CIOU, work_dir, tiny_data, max_iters=4, interval=2,
               checkpoint_interval=2, deterministic=True)
    runner, grads = _train(cfg, dict(cls='bbox_head.loss_cls',
                                     reg='bbox_head.loss_bbox'))
    return runner, grads, str(work_dir)


def test_retinanet_ciou_alpha_and_backprop(retina_run):
    runner, grads, _ = retina_run
    _check_trajectory(runner, grads, 2, 1.0, 4)
    assert runner.model.bbox_head.reg_decoded_bbox
    assert type(runner.model.bbox_head.loss_bbox).__name__ == 'CIoULoss'


def test_resume_gives_identical_trajectory(retina_run, tiny_data, tmp_path):
    full, _, work_dir = retina_run
    cfg = _cfg(RETINA_CIOU, tmp_path, tiny_data, max_iters=4, interval=2,
               deterministic=True)
    cfg.resume, cfg.load_from = True, osp.join(work_dir, 'iter_2.pth')
    resumed, _ = _train(cfg)
    np.testing.assert_allclose(_history(resumed, 'alpha'),
                               _history(full, 'alpha'), rtol=1e-6)
    a, b = _hook(full).rule.state_dict(), _hook(resumed).rule.state_dict()
    assert a.keys() == b.keys() and a['num_steps'] == b['num_steps'] == 4
    np.testing.assert_allclose(b['alpha'], a['alpha'], rtol=1e-6)
    for key in ('cls_mean', 'cls_std', 'reg_mean', 'reg_std'):
        np.testing.assert_allclose(b['last_window'][key],
                                   a['last_window'][key], rtol=1e-5)


def test_old_checkpoint_warns_and_starts_fresh(retina_run, tiny_data,
                                               tmp_path):
    _, _, work_dir = retina_run
    ckpt = torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu',
                      weights_only=False)
    del ckpt['mmdet_alwa']
    old = str(tmp_path / 'old.pth')
    torch.save(ckpt, old)
    cfg = _cfg(RETINA_CIOU, tmp_path / 'wd', tiny_data, max_iters=3)
    cfg.resume, cfg.load_from = True, old
    runner = Runner.from_cfg(cfg)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    try:
        with safe_checkpoint_loading():
            runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert any('starts fresh' in r.getMessage() for r in records)
    rule = _hook(runner).rule
    assert rule.num_steps == 1 and rule.alpha == 1.0


def _ddp_worker(rank, world_size, data, work_dir):
    cfg = _cfg(FRCNN, work_dir, data, max_iters=4, interval=2)
    runner = Runner.from_cfg(make_ddp_cfg(cfg))
    runner.train()
    return _history(runner, 'alpha'), _history(runner, 'raw_cls')


def test_ddp_alpha_identical_on_ranks(tiny_data, tmp_path):
    (alpha0, raw0), (alpha1, raw1) = dist_run(
        _ddp_worker, 2, tiny_data, str(tmp_path), timeout=150)
    assert alpha0 == alpha1 and raw0 == raw1
    assert len(set(alpha0)) > 1 and all(math.isfinite(a) for a in alpha0)


@pytest.mark.parametrize('loss_bbox', [
    dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
    dict(type='GIoULoss', loss_weight=1.0)])
def test_other_regression_losses(loss_bbox, tiny_data, tmp_path):
    cfg = _cfg(FRCNN, tmp_path, tiny_data, max_iters=2, interval=2)
    cfg.model.rpn_head.loss_bbox = loss_bbox
    cfg.model.rpn_head.reg_decoded_bbox = 'IoU' in loss_bbox['type']
    runner, _ = _train(cfg)
    alphas = _history(runner, 'alpha')
    assert alphas[0] == 1.0 and 0 < alphas[1] < 1


# ------------------------------------------------------- hook, no training
def _tiny_model(tiny_data, tmp_path, config=FRCNN):
    return MODELS.build(tiny_cfg(config, str(tmp_path), tiny_data).model)


def test_bad_loss_path(tiny_data, tmp_path):
    model = _tiny_model(tiny_data, tmp_path)
    hook = LossWeightingHook(
        rule=dict(type='ALWA'),
        losses=dict(cls='rpn_head.loss_cls', reg='bbox_head.loss_bbox'))
    with pytest.raises(ValueError, match=r"bbox_head\.loss_bbox.*"
                       r"rpn_head\.loss_cls.*rpn_head\.loss_bbox"):
        hook.before_run(SimpleNamespace(model=model))


def test_head_prefixes_every_loss_path(tiny_data, tmp_path):
    model = _tiny_model(tiny_data, tmp_path)
    hook = LossWeightingHook(
        rule=dict(type='ALWA'), head='roi_head.bbox_head',
        losses=dict(cls='loss_cls', reg=['loss_bbox']))
    assert hook.loss_paths == dict(cls=['roi_head.bbox_head.loss_cls'],
                                   reg=['roi_head.bbox_head.loss_bbox'])
    assert model.get_submodule(hook.loss_paths['cls'][0]) is \
        model.roi_head.bbox_head.loss_cls


@pytest.mark.parametrize('kwargs,match', [
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a')), 'losses'),
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg='b', x='c')),
     'losses'),
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg=[])), 'losses'),
    (dict(rule=dict(type='Nope'), losses=dict(cls='a', reg='b')), 'Nope'),
    (dict(rule=dict(type='ALWA', variant=5), losses=dict(cls='a', reg='b')),
     'variant'),
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg='b'),
          name='a/b'), 'name'),
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg='b'),
          signals=dict(kpi=dict(type='kpi'))), 'not required'),
    *[(dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg='b'),
            head=head), 'head') for head in ('', 3)],
    (dict(rule=dict(type='ALWA'), losses=dict(cls='a', reg='b'),
          restore_on_load_from='yes'), 'restore_on_load_from'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossWeightingHook(**kwargs)


def test_passes_through_outside_training(tiny_data, tmp_path):
    model = _tiny_model(tiny_data, tmp_path)
    hook = LossWeightingHook(
        rule=dict(type='ALWA'),
        losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox'))
    hook.before_run(SimpleNamespace(model=model))
    hook.rule.alpha = 0.5
    x = torch.rand(8, 1)
    label = torch.zeros(8, dtype=torch.long)
    expected = model.rpn_head.loss_cls(x, label)
    hook.before_train_iter(None, 0)
    assert model.rpn_head.loss_cls(x, label) == pytest.approx(
        0.5 * expected.item())
    hook.taps.active = False  # what after_train_iter does first
    assert model.rpn_head.loss_cls(x, label) == expected
    hook.after_run(None)
    hook.before_train_iter(None, 0)
    assert model.rpn_head.loss_cls(x, label) == expected  # hooks removed


# ------------------------------------------ extension points (other rules)
class _Probe(BaseWeighting):
    """A rule using every extension point: a signal, a learnable parameter
    and a regularizer."""
    required_signals = ('probe',)

    def __init__(self):
        super().__init__(tasks=('cls', 'reg'))
        self.log_w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    @property
    def weights(self):
        w = float(self.log_w.detach().exp())
        return {'cls': w, 'reg': 1.0}

    def weight_loss(self, task, loss):
        return loss * self.log_w.exp() if task == 'cls' else loss

    def regularizer(self):
        return (self.log_w - 1.0) ** 2

    def parameters(self):
        return [self.log_w]

    def _update(self, losses, probe):
        self.seen.append((dict(losses), dict(probe)))


class _ProbeProvider(SignalProvider):
    calls = []

    def attach(self, model, loss_modules):
        super().attach(model, loss_modules)
        self.calls.append(('attach', sorted(loss_modules)))

    def reset(self):
        self.calls.append('reset')
        self.value = None

    def on_losses(self, raw, rule):
        assert raw['cls'].requires_grad  # still attached to the graph
        self.calls.append('on_losses')
        self.value = {t: 10 * float(v) for t, v in raw.items()}

    def collect(self):
        self.calls.append('collect')
        return self.value

    def detach(self):
        self.calls.append('detach')


@pytest.fixture
def probe_rule():
    register_rule(_Probe)
    register_signal_provider('probe')(_ProbeProvider)
    yield
    RULES.pop('_Probe')
    SIGNAL_PROVIDERS.module_dict.pop('probe')


def test_extension_points(probe_rule, tiny_data, tmp_path):
    cfg = _cfg(FRCNN, tmp_path, tiny_data, max_iters=2)
    del cfg.default_hooks['alwa']
    cfg.default_hooks.probe = dict(
        type='LossWeightingHook', name='probe', rule=dict(type='_Probe'),
        losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox'),
        param_group=dict(lr=0.1, momentum=0.0, weight_decay=0.0))
    runner, _ = _train(cfg)
    hook = _hook(runner)
    assert _ProbeProvider.calls == [
        ('attach', ['cls', 'reg']), 'reset', 'on_losses', 'collect',
        'reset', 'on_losses', 'collect', 'detach']
    for losses, probe in hook.rule.seen:  # signals reach step()
        assert probe == pytest.approx({t: 10 * v for t, v in losses.items()},
                                      rel=1e-5)
    group = runner.optim_wrapper.optimizer.param_groups[-1]
    assert group['params'] == [hook.rule.log_w] and group['lr'] == 0.1
    assert hook.rule.log_w.item() > 0  # trained towards 1 by regularizer
    assert 'train/loss_probe_regularizer' in runner.message_hub.log_scalars
    ckpt = torch.load(osp.join(str(tmp_path), 'iter_2.pth'),
                      weights_only=False)
    assert len(ckpt['optimizer']['param_groups']) == 2
