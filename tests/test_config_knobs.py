"""Every knob our configs present changes with one line of a child config,
and the change reaches the built hook or model (the trap this guards
against: a top-level ``alwa_interval = 50`` in a child changed nothing,
because the base had already put the old value into its hook).

The knobs of one config are set by a chain of children, one line each
(child k inherits child k-1), so that they also accumulate as a user's
layers of configs would; every value differs from the config's own."""
import copy
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet.registry import HOOKS, MODELS

from _helpers import REPO_ROOT

BAL = 'configs/balancers/{}_r50_{}_voc.py'
SIMCLR = 'configs/simclr/simclr_r50_voc.py'
TO_ROI_HEAD = dict(cls=['roi_head.bbox_head.loss_cls'],
                   reg=['roi_head.bbox_head.loss_bbox'])


def _chain(tmp_path, config, lines):
    """The config, and its last child of a chain with one line each."""
    base = osp.join(REPO_ROOT, config)
    parent = base
    for i, line in enumerate(lines):
        path = tmp_path / f'child{i}.py'
        path.write_text(f'_base_ = {parent!r}\n{line}\n')
        parent = str(path)
    return Config.fromfile(base), Config.fromfile(parent)


def _check_knobs(base, child, knobs, read):
    for line, value_of, expected in knobs:
        assert value_of(read(child)) == expected, line
        assert value_of(read(base)) != expected, f'not a change: {line}'


def _alwa(line):
    return f'default_hooks = dict(alwa=dict({line}))'


ALWA = [
    (_alwa('rule=dict(variant=2)'), lambda h: h.rule.variant, 2),
    (_alwa('rule=dict(interval=30)'), lambda h: h.rule.interval, 30),
    (_alwa('rule=dict(init_weight=0.5)'), lambda h: h.rule.init_weight, 0.5),
    (_alwa("rule=dict(mode='multiplicative')"), lambda h: h.rule.mode,
     'multiplicative'),
]
# (config, hook name, [(the child's line, read from the built hook, value)])
HOOK_KNOBS = [
    ('configs/alwa/faster_rcnn_r50_alwa1_voc.py', 'alwa', ALWA + [
        (_alwa("head='roi_head.bbox_head'"), lambda h: h.loss_paths,
         TO_ROI_HEAD)]),
    # at the end of chains of our own configs (variant, loss, depth)
    ('configs/alwa/retinanet_r50_alwa1_ciou_voc.py', 'alwa', ALWA),
    ('configs/alwa/faster_rcnn_r101_alwa2_smoothl1_voc.py', 'alwa', [
        (_alwa('rule=dict(variant=1)'), lambda h: h.rule.variant, 1),
        (_alwa('rule=dict(interval=20)'), lambda h: h.rule.interval, 20)]),
    ('configs/alwa/retinanet_r50_alwa1_coco.py', 'alwa', ALWA),
    ('configs/demo/faster_rcnn_r18_alwa1_demo.py', 'alwa', ALWA),
]
for det, mode, metric in (('faster_rcnn', 'one_stage', 'balanced'),
                          ('retinanet', 'rpn', 'accuracy')):
    head = ([(f"default_hooks = dict({{m}}=dict(head='roi_head.bbox_head'))",
              lambda h: h.loss_paths, TO_ROI_HEAD)]
            if det == 'faster_rcnn' else [])

    def _with_head(name, knobs, head=head):
        return knobs + [(line.format(m=name), f, v) for line, f, v in head]

    HOOK_KNOBS += [
        (BAL.format(det, 'dwa'), 'dwa', _with_head('dwa', [
            ('default_hooks = dict(dwa=dict(rule=dict(interval=10)))',
             lambda h: h.rule.interval, 10),
            ('default_hooks = dict(dwa=dict(rule=dict(temperature=1.0)))',
             lambda h: h.rule.temperature, 1.0)])),
        (BAL.format(det, 'dtp'), 'dtp', _with_head('dtp', [
            ('default_hooks = dict(dtp=dict(rule=dict(gamma=2.0)))',
             lambda h: h.rule.gamma, dict(cls=2.0, reg=2.0)),
            ('default_hooks = dict(dtp=dict(rule=dict(alpha=0.3)))',
             lambda h: h.rule.alpha, 0.3),
            ("default_hooks = dict(dtp=dict(signals=dict(kpi=dict("
             f"cls_metric='{metric}'))))",
             lambda h: h.providers['kpi'].cls_metric, metric)])),
        (BAL.format(det, 'guided'), 'guided', _with_head('guided', [
            ('default_hooks = dict(guided=dict(rule=dict(warmup=5)))',
             lambda h: h.rule.warmup, 5),
            (f"default_hooks = dict(guided=dict(rule=dict(mode='{mode}')))",
             lambda h: h.rule.mode, mode)])),
        (BAL.format(det, 'uncertainty'), 'uncertainty', _with_head(
            'uncertainty', [
                ('default_hooks = dict(uncertainty=dict(rule=dict('
                 'init_log_var=0.5)))', lambda h: h.rule.log_vars.tolist(),
                 [0.5, 0.5]),
                ('default_hooks = dict(uncertainty=dict(param_group=dict('
                 'weight_decay=1e-4)))', lambda h: h.param_group,
                 dict(weight_decay=1e-4))])),
        (BAL.format(det, 'gradnorm'), 'gradnorm', _with_head('gradnorm', [
            ('default_hooks = dict(gradnorm=dict(rule=dict(alpha=0.5)))',
             lambda h: h.rule.alpha, 0.5),
            ('default_hooks = dict(gradnorm=dict(rule=dict(lr=0.01)))',
             lambda h: h.rule.lr, 0.01),
            ("default_hooks = dict(gradnorm=dict(signals=dict(grad_norm="
             "dict(shared_layer='neck'))))",
             lambda h: h.providers['grad_norm'].shared_layer, ['neck'])])),
        (BAL.format(det, 'tdb'), 'tdb', _with_head('tdb', [
            ('default_hooks = dict(tdb=dict(rule=dict(theta=0.5)))',
             lambda h: h.rule.theta, 0.5),
            ('default_hooks = dict(tdb=dict(rule=dict(lr=0.01)))',
             lambda h: h.rule.lr, 0.01)])),
    ]


@pytest.mark.parametrize('config,name,knobs', HOOK_KNOBS,
                         ids=[osp.basename(c) for c, _, _ in HOOK_KNOBS])
def test_hook_knobs_reach_the_built_hook(config, name, knobs, tmp_path):
    base, child = _chain(tmp_path, config, [line for line, _, _ in knobs])
    _check_knobs(base, child, knobs, lambda cfg: HOOKS.build(
        copy.deepcopy(cfg.default_hooks[name])))


def test_a_child_drops_a_hook_with_one_line(tmp_path):
    _, cfg = _chain(tmp_path, 'configs/alwa/faster_rcnn_r50_alwa1_voc.py',
                    ['default_hooks = dict(alwa=None)'])
    assert cfg.default_hooks.alwa is None  # mmengine's Runner skips it
    assert cfg.default_hooks.nonfinite_guard.type == 'NonFiniteGuardHook'


def _module(path):
    """Reads the model's submodule at ``path``, built from its config."""

    def read(cfg):
        node = cfg.model
        for key in path.split('.'):
            node = node[key]
        return MODELS.build(copy.deepcopy(node))

    return read


@pytest.mark.parametrize('config,knobs', [
    (BAL.format('faster_rcnn', 'sample_level'), [
        ('model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict('
         'beta=1.0))))',
         lambda cfg: _module('roi_head.bbox_head.loss_cls')(cfg).beta, 1.0),
        ('model = dict(rpn_head=dict(loss_cls=dict(gamma=1.0)))',
         lambda cfg: _module('rpn_head.loss_cls')(cfg).gamma, 1.0)]),
    (BAL.format('retinanet', 'sample_level'), [
        ('model = dict(bbox_head=dict(loss_cls=dict(gamma=1.0)))',
         lambda cfg: _module('bbox_head.loss_cls')(cfg).gamma, 1.0)]),
    # SimCLR builds its loss_fn from model.loss
    (SIMCLR, [
        ('model = dict(loss=dict(temperature=0.2))',
         lambda cfg: _module('loss')(cfg).temperature, 0.2)]),
], ids=['faster_rcnn_sample_level', 'retinanet_sample_level', 'simclr_tau'])
def test_model_knobs_reach_the_built_module(config, knobs, tmp_path):
    init_default_scope('mmdet')
    base, child = _chain(tmp_path, config, [line for line, _, _ in knobs])
    _check_knobs(base, child, knobs, lambda cfg: cfg)


def test_simclr_batch_size_reaches_the_dataloader(tiny_data, tmp_path):
    _, cfg = _chain(tmp_path, SIMCLR,
                    ['train_dataloader = dict(batch_size=3)'])
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    # the images of the tiny data instead of VOC's; the rest as configured
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader_cfg.dataset = dict(type='UnlabeledImageDataset',
                              img_dir=osp.join(tiny_data, 'train'),
                              pipeline=cfg.simclr_pipeline)
    init_default_scope('mmdet')
    loader = Runner.build_dataloader(loader_cfg)
    assert loader.batch_size == 3 and loader.drop_last
