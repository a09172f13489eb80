"""GradNorm's/TDB's ``grad_norm`` signal under mixed precision.

The oracle of every test is the float32 norm of the task's gradient at the
shared layer, taken here directly with ``torch.autograd.grad`` outside
autocast, never through the provider.

mmengine 0.10.7's ``AmpOptimWrapper`` asserts a CUDA (NPU, MLU, MUSA) device
and builds ``torch.cuda.amp.GradScaler``, and its autocast allows only
bfloat16 on a CPU. So on this CPU machine :func:`cpu_amp_wrapper` builds the
real wrapper (our ``NonFiniteGuardAmpOptimWrapper``, a subclass of it) with
those two names patched in mmengine's module: the device check passes and the
scaler is torch's CPU ``GradScaler``, which scales and unscales as on a GPU.
The float16 cases run under ``torch.autocast('cpu', dtype=torch.float16)``
directly; the Runner run uses mmengine's own (bfloat16) autocast.
"""
import functools
import math
from unittest import mock

import pytest
import torch
from mmengine.runner import Runner
from torch import nn

from _detectors import DETECTORS, detector_cfg
from mmdet_alwa.engine.hooks.signals import build_signal_provider
from mmdet_alwa.engine.optimizers import NonFiniteGuardAmpOptimWrapper
from mmdet_alwa.weighting import GradNorm

AMP_MODULE = 'mmengine.optim.optimizer.amp_optimizer_wrapper'


def cpu_amp_patches(init_scale=2.**16):
    """Patches under which mmengine's AmpOptimWrapper builds on a CPU, with
    torch's CPU GradScaler (see the module docstring)."""
    return (mock.patch(f'{AMP_MODULE}.is_cuda_available', return_value=True),
            mock.patch(f'{AMP_MODULE}.GradScaler', functools.partial(
                torch.amp.GradScaler, 'cpu', init_scale=init_scale)))


def cpu_amp_wrapper(model, init_scale=2.**16, dtype='float16'):
    p1, p2 = cpu_amp_patches(init_scale)
    with p1, p2:
        return NonFiniteGuardAmpOptimWrapper(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
            dtype=dtype)


class Net(nn.Module):
    """A shared layer and two heads; ``reg`` is a loss whose gradient is
    ~1e-9 per element: below float16's smallest subnormal (6e-8)."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(8, 16)
        self.cls_head = nn.Linear(16, 3)
        self.reg_head = nn.Linear(16, 4)

    def losses(self, x):
        z = torch.relu(self.shared(x))
        cls = self.cls_head(z).float().pow(2).mean()
        reg = 1e-9 * self.reg_head(z).float().abs().sum()
        return dict(cls=cls, reg=reg)


def _provider(net, optim_wrapper=None):
    p = build_signal_provider(dict(type='grad_norm', shared_layer='shared'))
    p.optim_wrapper = optim_wrapper
    p.attach(net, dict(cls=[net.cls_head], reg=[net.reg_head]))
    p.reset()
    return p


def _fp32_norms(net, x):
    """The oracle: float32 gradients at the shared layer, no autocast."""
    params = list(net.shared.parameters())
    norms = {}
    for task, loss in net.losses(x).items():
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        norms[task] = torch.cat([g.flatten() for g in grads]).norm().item()
    return norms


def _setup(seed=0):
    torch.manual_seed(seed)
    return Net(), torch.randn(32, 8)


def test_bfloat16_autocast_matches_float32():
    net, x = _setup()
    ref = _fp32_norms(net, x)
    assert all(v > 0 for v in ref.values())
    for wrapper in (None, cpu_amp_wrapper(net, dtype='bfloat16')):
        p = _provider(net, wrapper)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            raw = net.losses(x)
            assert net.shared(x).dtype == torch.bfloat16  # really bf16
            p.on_losses(raw, rule=None)
        got = p.collect()
        for task in ref:
            assert got[task] > 0
            assert got[task] == pytest.approx(ref[task], rel=1e-2)


def test_float16_underflow_is_undone_by_the_loss_scaler():
    net, x = _setup()
    ref = _fp32_norms(net, x)
    assert 1e-9 < ref['reg'] < 1e-7  # its gradient is below fp16's range
    # without a scaler: reg's float16 gradient is 0 (and a warning says so)
    p = _provider(net)
    with mock.patch('mmdet_alwa.engine.hooks.signals.grad_norm.print_log') \
            as log, torch.autocast('cpu', dtype=torch.float16):
        p.on_losses(net.losses(x), rule=None)
        p.reset()
        p.on_losses(net.losses(x), rule=None)
    assert log.call_count == 1 and 'float16' in log.call_args[0][0]
    unscaled = p.collect()
    assert unscaled['reg'] == 0.0
    assert unscaled['cls'] == pytest.approx(ref['cls'], rel=1e-2)
    # through the wrapper's scaler (scale 2^16, created lazily here as in
    # its backward): the float32 norms within float16 precision
    wrapper = cpu_amp_wrapper(net)
    scaler = wrapper.loss_scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    q = _provider(net, wrapper)
    with torch.autocast('cpu', dtype=torch.float16):
        q.on_losses(net.losses(x), rule=None)
    scaled = q.collect()
    assert scaler.get_scale() == 2.**16
    for task in ref:
        assert scaled[task] == pytest.approx(ref[task], rel=1e-2)
    # and the wrapper's own step with that scaler still works afterwards
    with torch.autocast('cpu', dtype=torch.float16):
        wrapper.update_params(sum(net.losses(x).values()))


def test_overflowing_scale_gives_a_nonfinite_norm_that_gradnorm_skips():
    net, x = _setup()
    # 2^60 x cls's gradient (~1e-1) is far above float16's max (65504)
    p = _provider(net, cpu_amp_wrapper(net, init_scale=2.**60))
    rule = GradNorm(tasks=('cls', 'reg'))
    with torch.autocast('cpu', dtype=torch.float16):
        raw = net.losses(x)
        p.on_losses(raw, rule)
    norms = p.collect()
    assert not math.isfinite(norms['cls'])  # not a silent 0
    p.watch(norms)  # as the hook does, with the reduced values
    assert p._empty_iters['cls'] == 1  # counted by the provider
    rule.step({t: v.item() for t, v in raw.items()}, grad_norm=norms)
    assert rule.num_skipped == 1
    assert rule.weights == dict(cls=1.0, reg=1.0)
    assert rule.log_scalars()['num_skipped'] == 1.0


def _retinanet_grad_norms(tmp_path, tiny_data, amp):
    det = DETECTORS['retinanet']
    hooks = dict(bal=dict(type='LossWeightingHook', name='bal',
                          rule=dict(type='GradNorm', tasks=('cls', 'reg')),
                          losses=det.losses))
    cfg = detector_cfg('retinanet', str(tmp_path / ('amp' if amp else 'fp32')),
                       tiny_data, 1, hooks, checkpoint_interval=100)
    if amp:
        cfg.optim_wrapper.type = 'NonFiniteGuardAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    runner = Runner.from_cfg(cfg)
    calls = []
    p1, p2 = cpu_amp_patches()
    with p1, p2:
        if amp:
            scale = torch.amp.GradScaler.scale
            with mock.patch.object(
                    torch.amp.GradScaler, 'scale', autospec=True,
                    side_effect=lambda s, out: calls.append(s) or scale(
                        s, out)):
                runner.train()
        else:
            runner.train()
    hook = next(h for h in runner.hooks if getattr(h, 'name', '') == 'bal')
    return runner, hook, calls


def test_runner_amp_run_measures_through_the_wrappers_scaler(
        tiny_data, tmp_path):
    """A tiny RetinaNet with GradNorm: one iteration under the AMP wrapper
    (bfloat16 autocast, CPU GradScaler at 2^16) and one in float32 from the
    same seed give the same gradient norms within bfloat16 precision; the
    provider got the runner's wrapper and scaled both tasks' losses with
    its scaler (plus the wrapper's own backward)."""
    ref_runner, ref_hook, _ = _retinanet_grad_norms(tmp_path, tiny_data,
                                                    amp=False)
    runner, hook, calls = _retinanet_grad_norms(tmp_path, tiny_data,
                                                amp=True)
    provider = hook.providers['grad_norm']
    assert provider.optim_wrapper is runner.optim_wrapper
    scaler = runner.optim_wrapper.loss_scaler
    assert calls == [scaler] * 3  # cls, reg (provider), total (backward)
    ref = ref_hook.rule.last_grad_norm
    got = hook.rule.last_grad_norm
    assert hook.rule.num_skipped == 0 and all(v > 0 for v in ref.values())
    for task in ('cls', 'reg'):
        assert got[task] == pytest.approx(ref[task], rel=1e-2)
