"""The rules over TorchJD under ``--amp``, through mmengine's Runner: a tiny
RetinaNet, one iteration under the AMP optim wrapper (bfloat16 autocast, the
CPU GradScaler at 2^16, as test_gradnorm_amp.py builds it on a CPU) and one
in float32 from the same seed.

Oracles: GLS's weights are S / (K L_k) of the logged raw losses (worked
here, not by the rule); UPGrad's and MGDA's are TorchJD's weighting of the
float32 run's Gramian within bfloat16 precision; for every rule the
gradient that reaches each loss module's output in the AMP run's backward
(through the loss scaler, unscaled here by the scale) is its weight.
"""
from unittest import mock

import pytest
import torch
from mmengine.runner import Runner

from _detectors import DETECTORS, detector_cfg
from test_engine.test_gradnorm_amp import cpu_amp_patches

SCALE = 2.**16


def _run(tmp_path, tiny_data, rule, amp):
    det = DETECTORS['retinanet']
    hooks = dict(bal=dict(type='LossWeightingHook', name='bal',
                          rule=dict(type=rule, tasks=('cls', 'reg')),
                          losses=det.losses))
    cfg = detector_cfg('retinanet', str(tmp_path / f'{rule}_{amp}'),
                       tiny_data, 1, hooks, checkpoint_interval=100)
    if amp:
        cfg.optim_wrapper.type = 'NonFiniteGuardAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    grads = {}

    def probe(task):
        def hook(module, args, out):
            if module.training and out.requires_grad:
                def keep(g):  # the last one: the main backward's
                    grads.setdefault(task, []).append(g.sum().item())
                out.register_hook(keep)
        return hook

    model.bbox_head.loss_cls.register_forward_hook(probe('cls'))
    model.bbox_head.loss_bbox.register_forward_hook(probe('reg'))
    hook = next(h for h in runner.hooks if getattr(h, 'name', '') == 'bal')
    used = []
    prepare = hook.rule.prepare

    def spy(losses, **kwargs):
        w = prepare(losses, **kwargs)
        used.append({t: float(v) for t, v in w.items()})
        if 'gramian' in kwargs and kwargs['gramian'] is not None:
            used[-1]['gramian'] = kwargs['gramian'].tolist()
        used[-1]['raw'] = {t: float(v) for t, v in losses.items()}
        return w

    hook.rule.prepare = spy
    p1, p2 = cpu_amp_patches(SCALE)
    with p1, p2:
        runner.train()
    return used[0], {t: g[-1] for t, g in grads.items()}


@pytest.mark.parametrize('rule', ['GLS', 'UPGrad', 'MGDA'])
def test_amp_weights_and_gradients(rule, tmp_path, tiny_data):
    from torchjd import aggregation as A
    ref, _ = _run(tmp_path, tiny_data, rule, amp=False)
    got, grads = _run(tmp_path, tiny_data, rule, amp=True)
    if rule == 'GLS':
        raw = got['raw']
        s = (raw['cls'] * raw['reg']) ** 0.5
        expected = {t: s / (2 * v) for t, v in raw.items()}
    else:
        weighting = dict(UPGrad=A.UPGradWeighting,
                         MGDA=A.MGDAWeighting)[rule]()
        # at unit trace: TorchJD's UPGrad takes a Gramian of trace < 1e-4
        # (representation Gramians are far smaller) for zero
        gramian = torch.tensor(ref['gramian'], dtype=torch.float64)
        w = weighting(gramian / gramian.trace())
        expected = dict(cls=w[0].item(), reg=w[1].item())
    for task in ('cls', 'reg'):
        # bfloat16 activations: about 3 significant digits
        assert got[task] == pytest.approx(expected[task], rel=3e-2)
        # the backward went through the loss scaler: scale x weight
        assert grads[task] / SCALE == pytest.approx(got[task], rel=1e-3)
