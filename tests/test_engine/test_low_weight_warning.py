"""The hook's warning when ALWA's α stays low (issue 19): hand-fed loss
streams whose α is worked out by hand in the comments."""
from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub

from mmdet_alwa.engine.hooks.loss_weighting.scalars import (LowWeightWarning,
                                                            RuleLog)
from mmdet_alwa.engine.hooks.loss_weighting_hook import LossWeightingHook
from mmdet_alwa.weighting import ALWA

PATHS = {'cls': ['rpn_head.loss_cls'], 'reg': ['rpn_head.loss_bbox']}


class _Logger:
    def __init__(self):
        self.warnings, self.infos = [], []

    def warning(self, msg):
        self.warnings.append(msg)

    def info(self, msg):
        self.infos.append(msg)


def _feed(cls_per_window, interval=2, threshold=0.3, windows=3):
    """Feed ALWA_1 (faithful) windows of constant losses (cls as given, reg
    1); return the rule and the warnings logged after each window."""
    rule = ALWA(variant=1, interval=interval)
    log = RuleLog('alwa', LowWeightWarning('alwa', PATHS, threshold,
                                           windows))
    logger = _Logger()
    runner = SimpleNamespace(message_hub=MessageHub.get_instance('h8_lw'),
                             logger=logger, iter=0)
    after = []
    for cls in cls_per_window:
        for _ in range(interval):
            rule.step({'cls': cls, 'reg': 1.0})
            log.log(runner, rule, {'cls': cls, 'reg': 1.0})
            runner.iter += 1
        after.append(len(logger.warnings))
    return rule, logger.warnings, after


def test_locked_low_alpha_warns_once():
    # constant windows: std 0, so each statistic is the window's mean.
    # window 1: cls 4 > reg 1 -> alpha = 1/4 = 0.25; windows 2..: weighted
    # cls 0.25 * 4 = 1, not > reg 1 -> alpha stays 0.25 (< 0.3)
    rule, warnings, after = _feed([4.0] * 8)
    assert rule.alpha == pytest.approx(0.25)
    assert rule.weights == pytest.approx({'cls': 0.25, 'reg': 1.0})
    assert after == [0, 0, 1, 1, 1, 1, 1, 1]  # at the third window, once
    (msg,) = warnings
    assert msg == (
        'alwa: the cls loss (rpn_head.loss_cls) has been down-weighted to '
        'alpha = 0.25 times the reg loss (rpn_head.loss_bbox) for 3 '
        'consecutive windows (alpha < 0.3). On the RPN this can starve the '
        'proposals of small objects; check their per-class AP and recall, '
        'or bound alpha with rule=dict(alpha_min=0.5). See docs/alwa.md, '
        '"Small objects".')


def test_alpha_above_threshold_does_not_warn():
    # cls 2 > reg 1 -> alpha = 0.5, then weighted cls 1 = reg: stays 0.5
    rule, warnings, _ = _feed([2.0] * 8)
    assert rule.alpha == pytest.approx(0.5)
    assert warnings == []


def test_a_high_window_restarts_the_count():
    # cls 4 -> 0.25 (low 1); cls 2: weighted 0.5 <= 1, stays (low 2);
    # cls 8: weighted 2 > 1 -> alpha = 1/2 (count 0); cls 10: weighted 5 ->
    # alpha = 0.2 (low 1); cls 5: weighted 1, stays (low 2); again (low 3)
    rule, warnings, after = _feed([4.0, 2.0, 8.0, 10.0, 5.0, 5.0])
    assert rule.alpha == pytest.approx(0.2)
    assert after == [0, 0, 0, 0, 0, 1]
    assert 'alpha = 0.2 times' in warnings[0]
    assert 'for 3 consecutive windows' in warnings[0]


def test_hook_argument():
    alwa = dict(type='ALWA', variant=1, interval=50)
    losses = dict(cls='loss_cls', reg='loss_bbox')
    hook = LossWeightingHook(rule=alwa, losses=losses, head='rpn_head',
                             name='alwa')
    watch = hook.log.low_weight
    assert (watch.threshold, watch.windows) == (0.3, 3)
    assert watch.loss_paths == PATHS
    hook = LossWeightingHook(rule=alwa, losses=losses,
                             low_weight_warning=dict(threshold=0.1,
                                                     windows=5))
    assert (hook.log.low_weight.threshold,
            hook.log.low_weight.windows) == (0.1, 5)
    assert LossWeightingHook(rule=alwa, losses=losses,
                             low_weight_warning=False).log.low_weight is None
    # rules without a windowed alpha: off by default, an error if asked
    assert LossWeightingHook(rule=dict(type='DWA'),
                             losses=losses).log.low_weight is None
    with pytest.raises(ValueError, match='needs a rule with a windowed'):
        LossWeightingHook(rule=dict(type='DWA'), losses=losses,
                          low_weight_warning=dict(threshold=0.3))
    with pytest.raises(ValueError, match='takes threshold and windows'):
        LossWeightingHook(rule=alwa, losses=losses,
                          low_weight_warning=dict(window=3))
    with pytest.raises(ValueError, match='threshold'):
        LossWeightingHook(rule=alwa, losses=losses,
                          low_weight_warning=dict(threshold=0.0))


def test_warning_through_the_runner(tmp_path, tiny_data):
    """The small-object ALWA config, shrunk: with threshold 1 and one window,
    the first window that lowers α (cls loss ~0.69 against an RPN box loss
    far below it at initialisation) must log the warning, once."""
    import glob

    from mmengine.runner import Runner

    from _helpers import tiny_cfg
    cfg = tiny_cfg('configs/demo/faster_rcnn_r18_alwa1_small_demo.py',
                   str(tmp_path), tiny_data, max_iters=6)
    cfg.default_hooks.alwa.rule.update(interval=2)
    cfg.default_hooks.alwa.low_weight_warning = dict(threshold=1.0,
                                                     windows=1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, LossWeightingHook))
    assert hook.rule.alpha < 1.0
    (log,) = glob.glob(str(tmp_path / '*' / '*.log'))
    lines = [ln for ln in open(log) if 'has been down-weighted' in ln]
    assert len(lines) == 1
    assert 'WARNING' in lines[0]
    assert 'alwa: the cls loss (rpn_head.loss_cls)' in lines[0]
    assert 'reg loss (rpn_head.loss_bbox)' in lines[0]
