"""LossWeightingHook's mechanisms through mmengine's Runner on a tiny
Faster R-CNN: Guided Loss at the same iteration, resume vs fine-tune, two
hooks on one runner, non-finite counting under 2-rank DDP."""
import logging
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from _helpers import dist_run, make_ddp_cfg, tiny_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.utils import safe_checkpoint_loading

BASELINE = 'configs/alwa/faster_rcnn_r50_baseline_voc.py'
RPN = dict(cls='loss_cls', reg='loss_bbox')


def _cfg(work_dir, data, max_iters, hooks, **kw):
    cfg = tiny_cfg(BASELINE, str(work_dir), data, max_iters=max_iters, **kw)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.experiment_name = str(work_dir).replace('/', '_')
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[:] = [t for t in pipeline if t['type'] != 'RandomFlip']
    for name, hook in hooks.items():
        cfg.default_hooks[name] = dict(type='LossWeightingHook', name=name,
                                       **hook)
    return cfg


def _hooks(runner):
    return {h.name: h for h in runner.hooks
            if isinstance(h, LossWeightingHook)}


def _scalar(runner, key):
    return list(runner.message_hub.get_scalar(key)._log_history)


def _probe(runner, path):
    """Per iteration, the raw output of each call of the loss module at
    ``path`` and d(total loss)/d(that output): a forward hook registered
    before the weighting hook's sees the raw output."""
    seen = {}
    module = runner.model.get_submodule(path)

    def fwd(module, args, out):
        it = runner.iter + 1
        entry = seen.setdefault(it, dict(raw=[], grad=[]))
        entry['raw'].append(out.item())
        out.register_hook(lambda g: entry['grad'].append(g.item()))

    module.register_forward_hook(fwd)
    return seen


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _train(runner):
    handler = _Records()
    MMLogger.get_current_instance().addHandler(handler)
    try:
        with safe_checkpoint_loading():  # as tools/train.py (resume)
            runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    return handler.messages


# ------------------------------------------------------------ Guided Loss
@pytest.mark.parametrize('lagged', [False, True])
def test_guided_same_iteration_is_chen_et_al(lagged, tiny_data, tmp_path):
    """Chen et al.: the objectness loss times the detached L_reg / L_cls of
    the *same* iteration (transcribed from the probed raw losses);
    ``lagged=True``: of the previous iteration (1 at the first)."""
    hooks = dict(guided=dict(rule=dict(type='GuidedLoss', lagged=lagged),
                             head='rpn_head', losses=RPN))
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, 3, hooks))
    cls, reg = _probe(runner, 'rpn_head.loss_cls'), \
        _probe(runner, 'rpn_head.loss_bbox')
    runner.train()
    ratios = [sum(reg[i]['raw']) / sum(cls[i]['raw']) for i in (1, 2, 3)]
    factors = [1.0] + ratios[:2] if lagged else ratios
    for i, factor in enumerate(factors, start=1):
        # one call per FPN level, each scaled by the ratio; reg unweighted
        assert len(cls[i]['grad']) == 5
        np.testing.assert_allclose(cls[i]['grad'], factor, rtol=1e-6)
        np.testing.assert_allclose(reg[i]['grad'], 1.0, rtol=1e-6)
    logged_cls = _scalar(runner, 'train/loss_rpn_cls')
    logged_reg = _scalar(runner, 'train/loss_rpn_bbox')
    if not lagged:  # the weighted objectness loss equals the reg loss
        np.testing.assert_allclose(logged_cls, logged_reg, rtol=1e-5)
    assert not any(k.endswith('_same_iter')
                   for k in runner.message_hub.log_scalars)


def test_guided_same_iteration_through_a_derived_loss(tiny_data, tmp_path):
    """A loss the detector returns only in a derived form (here: the RoI
    head's cls loss scaled by 0.5 afterwards, as Cascade R-CNN's stage
    weights do) gets the weight through its gradient: d total/d raw =
    0.5 x ratio."""
    hooks = dict(guided=dict(rule=dict(type='GuidedLoss'),
                             head='roi_head.bbox_head', losses=RPN))
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, 2, hooks))
    model = runner.model
    original = model.roi_head.loss

    def halved(*args, **kwargs):
        losses = original(*args, **kwargs)
        losses['loss_cls'] = losses['loss_cls'] * 0.5
        return losses

    model.roi_head.loss = halved
    cls = _probe(runner, 'roi_head.bbox_head.loss_cls')
    reg = _probe(runner, 'roi_head.bbox_head.loss_bbox')
    runner.train()
    for i in (1, 2):
        ratio = reg[i]['raw'][0] / cls[i]['raw'][0]
        assert cls[i]['grad'][0] == pytest.approx(0.5 * ratio, rel=1e-5)


# ------------------------------------------------ resume versus fine-tune
ALWA = dict(rule=dict(type='ALWA', variant=1, interval=2),
            head='rpn_head', losses=RPN)


@pytest.fixture(scope='module')
def alwa_checkpoint(tiny_data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('alwa_ckpt')
    runner = Runner.from_cfg(_cfg(work_dir, tiny_data, 2, dict(alwa=ALWA)))
    runner.train()
    rule = _hooks(runner)['alwa'].rule
    assert rule.num_steps == 2 and rule.alpha != 1.0
    return osp.join(str(work_dir), 'iter_2.pth'), rule.state_dict()


@pytest.mark.parametrize('how', ['resume', 'load_from', 'restore'])
def test_resume_restores_fine_tune_starts_fresh(how, alwa_checkpoint,
                                                tiny_data, tmp_path):
    path, saved = alwa_checkpoint
    hook = dict(ALWA, restore_on_load_from=how == 'restore')
    cfg = _cfg(tmp_path, tiny_data, 3, dict(alwa=hook))
    cfg.load_from, cfg.resume = path, how == 'resume'
    runner = Runner.from_cfg(cfg)
    messages = _train(runner)
    rule = _hooks(runner)['alwa'].rule
    said = [m for m in messages if m.startswith('LossWeightingHook(alwa)')]
    if how == 'load_from':
        # a fine-tune: 3 fresh steps (one window of 2)
        assert (rule.num_steps, rule.num_windows) == (3, 1)
        assert said and all('starts fresh' in m for m in said)
    elif how == 'resume':
        # iteration 3 only, on the saved state: no new window yet
        assert (rule.num_steps, rule.num_windows) == (3, 1)
        assert rule.alpha == saved['alpha']
        assert len(said) == 1 and 'restored' in said[0] and \
            '(resume' in said[0]
    else:
        # 3 more steps on the saved 2: a second window at step 4
        assert (rule.num_steps, rule.num_windows) == (5, 2)
        assert len(said) == 1 and 'restore_on_load_from=True' in said[0]


# --------------------------------------------------- several hooks at once
def test_two_hooks_on_one_faster_rcnn(tiny_data, tmp_path):
    hooks = dict(
        alwa_rpn=dict(ALWA),
        alwa_roi=dict(ALWA, head='roi_head.bbox_head'))
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, 2, hooks))
    rpn = _probe(runner, 'rpn_head.loss_cls')
    roi = _probe(runner, 'roi_head.bbox_head.loss_cls')
    runner.train()
    hooks = _hooks(runner)
    assert set(hooks) == {'alwa_rpn', 'alwa_roi'}
    ckpt = torch.load(osp.join(runner.work_dir, 'iter_2.pth'),
                      weights_only=False)
    for name, hook in hooks.items():
        assert hook.rule.num_steps == 2
        assert len(_scalar(runner, f'train/{name}/alpha')) == 2
        assert ckpt['mmdet_alwa'][name] == hook.rule.state_dict()
    # each hook weights its own head (alpha is 1 in the first window)
    assert _scalar(runner, 'train/alwa_rpn/raw_cls')[0] == pytest.approx(
        sum(rpn[1]['raw']), rel=1e-6)
    assert _scalar(runner, 'train/alwa_roi/raw_cls')[0] == pytest.approx(
        roi[1]['raw'][0], rel=1e-6)
    # and the second window uses each hook's own alpha
    for probe, name in ((rpn, 'alwa_rpn'), (roi, 'alwa_roi')):
        alpha = _scalar(runner, f'train/{name}/alpha')[-1]
        assert alpha == hooks[name].rule.alpha


@pytest.mark.parametrize('second,match', [
    (dict(ALWA, losses=dict(cls='loss_cls', reg='loss_bbox')),
     'already weighted by LossWeightingHook'),
    (dict(rule=dict(type='DWA', tasks=('cls', 'reg', 'roi')),
          losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox',
                      roi='roi_head.bbox_head.loss_cls')),
     r"'rpn_head.loss_cls' is already weighted")])
def test_a_loss_weighted_by_two_hooks_is_an_error(second, match, tiny_data,
                                                  tmp_path):
    hooks = dict(alwa=ALWA, second=second)
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, 1, hooks))
    with pytest.raises(ValueError, match=match):
        runner.train()


def test_two_hooks_of_one_name_is_an_error(tiny_data, tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, tiny_data, 1, dict(a=ALWA)))
    runner.register_hook(LossWeightingHook(name='a', head='roi_head.bbox_head',
                                           **{k: v for k, v in ALWA.items()
                                              if k != 'head'}))
    with pytest.raises(ValueError, match="named 'a'"):
        runner.train()


# ----------------------------------------------------- DDP, a NaN on rank 1
def _nan_worker(rank, world_size, data, work_dir):
    torch.set_num_threads(1)
    cfg = _cfg(f'{work_dir}/r{rank}', data, 2, dict(alwa=ALWA))
    # the guard skips the poisoned step on both ranks instead of raising
    cfg.optim_wrapper.nonfinite_policy = 'skip'
    cfg.default_hooks.pop('nonfinite_guard', None)
    cfg = make_ddp_cfg(cfg)
    runner = Runner.from_cfg(cfg)
    loss_cls = runner.model.module.rpn_head.loss_cls

    def poison(module, args, out):  # rank 1, iteration 2: a NaN loss
        return out * math.nan if rank == 1 and runner.iter == 1 else None

    loss_cls.register_forward_hook(poison)
    runner.train()
    rule = _hooks(runner)['alwa'].rule
    return dict(nonfinite=rule.num_nonfinite, state=rule.state_dict(),
                logged=_scalar(runner, 'train/alwa/nonfinite_cls'),
                raw=_scalar(runner, 'train/alwa/raw_cls'))


def test_ddp_counts_a_nan_on_one_rank(tiny_data, tmp_path):
    r0, r1 = dist_run(_nan_worker, 2, tiny_data, str(tmp_path), timeout=200)
    for r in (r0, r1):
        assert r['nonfinite'] == dict(cls=1, reg=0)
        assert r['logged'] == [0.0, 1.0]
        assert len(r['raw']) == 2 and all(math.isfinite(v) for v in r['raw'])
    assert r0['state'] == r1['state'] and r0['raw'] == r1['raw']
