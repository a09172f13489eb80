"""``exact_gramian``: the Gramian of the task losses' Jacobian with respect to
the backbone's and neck's parameters, by ``torchjd.autogram``, on a tiny
FCOS through mmengine's Runner.

Oracle: at the same iteration, the explicit Jacobian of the raw losses
with respect to those parameters, one ``torch.autograd.grad`` per task (no
vmap, no TorchJD), and its Gramian; then TorchJD's UPGrad weighting of it
for the weights applied. Also: a two-stage detector (RoIAlign has no vmap
rule) and DDP are clear errors, and the arguments are checked.
"""
from unittest import mock

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torchjd.aggregation import UPGradWeighting

from _detectors import DETECTORS, detector_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.loss_weighting import representation

SHARED = ['backbone', 'neck']


def _hooks(name, **extra):
    det = DETECTORS[name]
    return dict(upgrad=dict(type='LossWeightingHook', name='upgrad',
                            rule=dict(type='UPGrad', tasks=list(det.losses)),
                            losses=det.losses, **extra))


class _Oracle(Hook):
    """Per iteration: the explicit parameter Gramian of the raw losses (the
    probes' outputs, before the weighting taps) and what the rule got."""

    def __init__(self, runner, name):
        det = DETECTORS[name]
        self.model = runner.model
        self.hook = next(h for h in runner.hooks
                         if isinstance(h, LossWeightingHook))
        self.tasks = list(det.losses)
        self.outputs = {}
        for task, path in det.losses.items():
            for p in [path] if isinstance(path, str) else path:
                self.model.get_submodule(p).register_forward_hook(
                    lambda m, a, out, t=task: self.outputs.setdefault(
                        t, []).append(out) if m.training else None)
        self.explicit, self.given, self.weights = [], [], []
        prepare = self.hook.rule.prepare

        def spy(losses, gramian=None):
            w = prepare(losses, gramian=gramian)
            self.given.append(gramian.clone())
            self.weights.append([float(w[t]) for t in self.tasks])
            return w

        self.hook.rule.prepare = spy

    def before_train(self, runner):
        self.model.register_forward_hook(self._after_forward)

    def _after_forward(self, module, args, out):
        if not module.training:
            return
        params = [p for path in SHARED
                  for p in self.model.get_submodule(path).parameters()
                  if p.requires_grad]
        rows = []
        for task in self.tasks:
            loss = sum(o.sum() for o in self.outputs[task])
            grads = torch.autograd.grad(loss, params, retain_graph=True,
                                        allow_unused=True)
            rows.append(torch.cat([
                (torch.zeros_like(p) if g is None else g).flatten()
                for p, g in zip(params, grads)]).double())
        jac = torch.stack(rows)
        self.explicit.append(jac @ jac.T)
        self.outputs = {}


def test_exact_gramian_on_fcos(tmp_path, tiny_data):
    cfg = detector_cfg('fcos', str(tmp_path), tiny_data, 2,
                       _hooks('fcos', exact_gramian=SHARED))
    runner = Runner.from_cfg(cfg)
    oracle = _Oracle(runner, 'fcos')
    runner.register_hook(oracle)
    runner.train()
    assert len(oracle.given) == len(oracle.explicit) == 2
    for given, explicit, applied in zip(oracle.given, oracle.explicit,
                                        oracle.weights):
        scale = explicit.diagonal().max()
        assert (given - explicit).abs().max() <= 1e-4 * scale
        # at unit trace (TorchJD's UPGrad takes a trace < 1e-4 for zero)
        expected = UPGradWeighting()(explicit / explicit.trace()).tolist()
        assert expected != pytest.approx([0.5, 0.5])
        assert applied == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_two_stage_detector_is_a_clear_error(tmp_path, tiny_data):
    cfg = detector_cfg('faster_rcnn', str(tmp_path), tiny_data, 1,
                       _hooks('faster_rcnn', exact_gramian=SHARED))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'vmap.*RoIAlign'):
        runner.train()


def test_ddp_is_a_clear_error(tmp_path, tiny_data):
    cfg = detector_cfg('fcos', str(tmp_path), tiny_data, 1,
                       _hooks('fcos', exact_gramian=SHARED))
    runner = Runner.from_cfg(cfg)
    with mock.patch.object(representation.dist, 'get_world_size',
                           return_value=2):
        with pytest.raises(ValueError, match='one process'):
            runner.train()


@pytest.mark.parametrize('kwargs,match', [
    (dict(rule=dict(type='MGDA'), exact_gramian=SHARED,
          representation='neck'), 'not both'),
    (dict(rule=dict(type='DWA'), exact_gramian=SHARED), 'takes no Gramian'),
    (dict(rule=dict(type='DWA'), representation='neck'), 'takes no Gramian'),
    (dict(rule=dict(type='MGDA'), exact_gramian='backbone'),
     'list of module paths'),
])
def test_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossWeightingHook(losses=dict(cls='a', reg='b'), **kwargs)


def test_child_config_one_line_with_validation(tmp_path, tiny_data):
    """The shipped RetinaNet UPGrad config switched to the exact Gramian by
    one key, trained and validated (the Engine's module hooks stay on the
    backbone and neck during validation)."""
    from _helpers import tiny_cfg
    cfg = tiny_cfg('configs/balancers/retinanet_r50_upgrad_voc.py',
                   str(tmp_path), tiny_data, max_iters=2)
    cfg.merge_from_dict({'default_hooks.upgrad.exact_gramian': SHARED})
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, LossWeightingHook))
    assert isinstance(hook.representation, representation.ParameterGramian)
    assert hook.rule.num_steps == 2 and hook.rule.num_fallbacks == 0
    assert 'val/coco/bbox_mAP' in runner.message_hub.log_scalars
