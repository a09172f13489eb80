"""The representation Gramian of gradient aggregation under float16 AMP.

Oracle: the float32 Gramian of the task gradients at the representation,
taken here with ``torch.autograd.grad`` outside autocast. Under float16
autocast a task whose gradient is below float16's smallest subnormal
(6e-8) vanishes from an unscaled Gramian; through the optim wrapper's loss
scaler (the real ``NonFiniteGuardAmpOptimWrapper`` built on the CPU as in
test_gradnorm_amp.py) the Gramian is the float32 one within float16
precision, and an overflowing scale gives a non-finite Gramian, which the
rule does not use.
"""
import math

import pytest
import torch

from mmdet_alwa.engine.hooks.loss_weighting.representation import \
    RepresentationTap
from mmdet_alwa.weighting import MGDA
from test_engine.test_gradnorm_amp import Net, cpu_amp_wrapper


def _tap(net):
    tap = RepresentationTap('test', 'shared')
    tap.attach(net)
    tap.start()
    return tap


def _fp32_gramian(net, x):
    h = net.shared(x)  # the representation: the shared layer's output
    z = torch.relu(h)
    losses = [net.cls_head(z).pow(2).mean(),
              1e-9 * net.reg_head(z).abs().sum()]
    grads = [torch.autograd.grad(loss, h, retain_graph=True)[0].flatten()
             for loss in losses]
    jac = torch.stack(grads).double()
    return jac @ jac.T


def _amp_gramian(net, x, optim_wrapper):
    tap = _tap(net)
    with torch.autocast('cpu', dtype=torch.float16):
        losses = net.losses(x)
    return tap.gramian([losses['cls'], losses['reg']], optim_wrapper)


def _setup():
    torch.manual_seed(0)
    return Net(), torch.randn(32, 8)


def test_unscaled_float16_loses_the_small_task():
    net, x = _setup()
    g = _amp_gramian(net, x, None)
    assert g[1, 1].item() == 0.0  # underflowed
    assert _fp32_gramian(net, x)[1, 1].item() > 0


def test_the_loss_scaler_restores_the_float32_gramian():
    net, x = _setup()
    ref = _fp32_gramian(net, x)
    g = _amp_gramian(net, x, cpu_amp_wrapper(net))
    # the shared layer's output is float16 under autocast: its gradients
    # carry float16's rounding (about 1e-3)
    assert g.diagonal().tolist() == pytest.approx(ref.diagonal().tolist(),
                                                  rel=2e-2)
    assert g[0, 1].item() == pytest.approx(ref[0, 1].item(), rel=5e-2,
                                           abs=1e-3 * math.sqrt(
                                               ref[0, 0] * ref[1, 1]))


def test_an_overflowing_scale_is_not_used():
    net, x = _setup()
    g = _amp_gramian(net, x, cpu_amp_wrapper(net, init_scale=2.**40))
    assert not torch.isfinite(g).all()
    rule = MGDA()
    w = rule.prepare(dict(cls=1.0, reg=1.0), gramian=g)
    assert [float(w['cls']), float(w['reg'])] == [1.0, 1.0]  # the last
    rule.step(dict(cls=1.0, reg=1.0))
    assert rule.num_fallbacks == 1
