"""FAMO with the paper's re-forward (``losses_after='reforward'``): the
update after iteration t uses that iteration's losses and the same batch's
losses after the step (the ``loss_after_step`` signal).

Oracles: Adam's first step worked by hand (as in the detector matrix's
FAMO oracle) from the two loss vectors; through mmengine's Runner on a tiny
RetinaNet (no random sampler) at learning rate 0, the re-forward of the
unchanged model gives back exactly the iteration's raw losses, and the
re-forward leaves the BatchNorm statistics as a run without it has them.
"""
import math

import pytest
import torch
from mmengine.runner import Runner

from _detectors import DETECTORS, detector_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.weighting import FAMO


def test_update_uses_the_same_iterations_losses_before_and_after():
    rule = FAMO(losses_after='reforward')
    assert rule.required_signals == ('loss_after_step', )
    before, after = dict(cls=2.0, reg=1.0), dict(cls=1.0, reg=0.9)
    rule.prepare(before)
    rule.step(before, loss_after_step=after)
    current = dict(cls=1.5, reg=0.8)
    w = rule.prepare(current)
    # xi = -lr g / (|g| + 1e-8), g = z (delta - z.delta), z = (1/2, 1/2),
    # delta = log before - log after (eps 1e-8)
    eps = 1e-8
    delta = {t: math.log(before[t] + eps) - math.log(after[t] + eps)
             for t in before}
    zd = sum(0.5 * v for v in delta.values())
    g = {t: 0.5 * (delta[t] - zd) for t in delta}
    xi = {t: -0.025 * g[t] / (abs(g[t]) + 1e-8) for t in g}
    e = {t: math.exp(v) for t, v in xi.items()}
    z = {t: v / sum(e.values()) for t, v in e.items()}
    inv = {t: z[t] / (current[t] + eps) for t in z}
    expected = {t: v / sum(inv.values()) for t, v in inv.items()}
    assert {t: float(v) for t, v in w.items()} == pytest.approx(
        expected, rel=1e-9)


def test_nonfinite_after_makes_no_update():
    rule = FAMO(losses_after='reforward')
    rule.prepare(dict(cls=2.0, reg=1.0))
    rule.step(dict(cls=2.0, reg=1.0),
              loss_after_step=dict(cls=math.nan, reg=1.0))
    rule.prepare(dict(cls=1.0, reg=1.0))
    assert rule.num_updates == 0


def test_bad_argument_and_state_of_the_other_mode():
    with pytest.raises(ValueError, match='losses_after'):
        FAMO(losses_after='paper')
    state = FAMO().state_dict()
    with pytest.raises(ValueError, match='losses_after'):
        FAMO(losses_after='reforward').load_state_dict(state)


def _train(tmp_path, tiny_data, losses_after):
    det = DETECTORS['retinanet']
    hooks = dict(famo=dict(
        type='LossWeightingHook', name='famo',
        rule=dict(type='FAMO', tasks=('cls', 'reg'),
                  losses_after=losses_after), losses=det.losses))
    cfg = detector_cfg('retinanet', str(tmp_path / losses_after), tiny_data,
                       3, hooks, checkpoint_interval=100)
    cfg.optim_wrapper.optimizer.lr = 0.0
    runner = Runner.from_cfg(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, LossWeightingHook))
    steps = []
    step = hook.rule.step

    def spy(raw, **signals):
        steps.append((dict(raw), {k: dict(v) for k, v in signals.items()}))
        step(raw, **signals)

    hook.rule.step = spy
    torch.manual_seed(0)
    runner.train()
    buffers = {n: b.clone() for n, b in runner.model.named_buffers()}
    return hook, steps, buffers


def test_reforward_through_the_runner(tmp_path, tiny_data):
    hook, steps, buffers = _train(tmp_path, tiny_data, 'reforward')
    assert len(steps) == 3
    for raw, signals in steps:
        # learning rate 0: the same model on the same batch
        assert signals['loss_after_step'] == pytest.approx(raw, rel=1e-6)
    assert hook.rule.num_updates == 2  # applied at iterations 2 and 3
    _, plain_steps, plain_buffers = _train(tmp_path, tiny_data,
                                           'next_iteration')
    for (raw, _), (plain, _) in zip(steps, plain_steps):
        assert raw == pytest.approx(plain, rel=1e-6)
    # the re-forwards left the BatchNorm statistics untouched
    assert buffers.keys() == plain_buffers.keys()
    for name in buffers:
        assert torch.equal(buffers[name], plain_buffers[name]), name
