"""The non-finite guard with gradient accumulation and buffers.

A small BatchNorm network (a real mmengine ``BaseModel``) trains through
``model.train_step`` with ``NonFiniteGuardOptimWrapper``, as mmengine's loop
drives it. One micro-batch of the second accumulation window has a
non-finite loss (planted in the loss, or as a NaN input, which also makes
BN's running statistics NaN). The oracle is a plain torch loop that never sees
that window: the window must leave no trace at all (parameters, optimizer
state, buffers, gradients), and the windows around it must train exactly as
without it.
"""
import copy
import logging
import math

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from torch import nn

from mmdet.registry import OPTIM_WRAPPERS
from mmdet_alwa.engine.optimizers import BufferSnapshot, NonFiniteLossError

WINDOWS = 3
OPTIMIZERS = {
    'SGD': lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    'AdamW': lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


class _Net(BaseModel):
    """Linear -> BatchNorm -> Linear, squared-output loss; ``fault`` plants a
    non-finite value in the loss (``'nan'``, ``'inf'``) or in the input
    (``'forward'``)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4),
                                 nn.Linear(4, 1))

    def forward(self, inputs, data_samples=None, mode='loss', fault=None):
        if fault == 'forward':
            inputs = inputs.clone()
            inputs[0, 0] = math.nan
        loss = self.net(inputs).pow(2).mean()
        if fault in ('nan', 'inf'):
            loss = loss * getattr(math, fault)
        return dict(loss=loss)


def _batches(num):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(5, 3, generator=g) for _ in range(num)]


def _guarded(model, optimizer, acc, **kw):
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='NonFiniteGuardOptimWrapper',
        optimizer=OPTIMIZERS[optimizer](model.parameters()),
        accumulative_counts=acc, **kw))
    # what mmengine's train loop does before the first iteration
    wrapper.initialize_count_status(model, 0, WINDOWS * acc)
    return wrapper


def _train_step(model, wrapper, it, x, fault=None):
    MessageHub.get_current_instance().update_info('iter', it)
    return model.train_step(dict(inputs=x, fault=fault), wrapper)


def _reference(optimizer, acc, batches, windows):
    """Plain torch gradient accumulation over the given windows only."""
    model = _Net().train()
    opt = OPTIMIZERS[optimizer](model.parameters())
    for w in windows:
        for x in batches[w * acc:(w + 1) * acc]:
            (model(x)['loss'] / acc).backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _assert_equal_state(model_a, opt_a, model_b, opt_b):
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    oa, ob = opt_a.state_dict()['state'], opt_b.state_dict()['state']
    assert oa.keys() == ob.keys()
    for idx in oa:
        for key in oa[idx]:
            assert torch.equal(oa[idx][key], ob[idx][key]), (idx, key)


CASES = [(acc, pos) for acc in (1, 4) for pos in range(acc)]


@pytest.mark.parametrize('optimizer', list(OPTIMIZERS))
@pytest.mark.parametrize('fault', ['nan', 'inf', 'forward'])
@pytest.mark.parametrize('acc,pos', CASES)
def test_nonfinite_micro_batch_voids_its_window(acc, pos, fault, optimizer):
    batches = _batches(WINDOWS * acc)
    bad = acc + pos  # micro-batch `pos` of window 1
    model = _Net().train()
    wrapper = _guarded(model, optimizer, acc, nonfinite_policy='skip')
    for it, x in enumerate(batches):
        if it == acc:  # window 1 starts: what it must leave behind
            before = copy.deepcopy((model.state_dict(),
                                    wrapper.optimizer.state_dict()))
        _train_step(model, wrapper, it, x, fault if it == bad else None)
        if it == bad:
            assert wrapper.nonfinite_pending and wrapper.num_skipped == 1
            # buffers restored at once: the window's next micro-batches see
            # finite BN statistics
            for key, buf in model.named_buffers():
                assert torch.equal(buf, before[0][key]), key
        if it == 2 * acc - 1:  # window 1 ends: no trace of it
            after = (model.state_dict(), wrapper.optimizer.state_dict())
            for key, value in before[0].items():
                assert torch.equal(value, after[0][key]), key
            assert repr(before[1]['state']) == repr(after[1]['state'])
            assert all(p.grad is None or not p.grad.any()
                       for p in model.parameters())
    ref_model, ref_opt = _reference(optimizer, acc, batches, windows=(0, 2))
    _assert_equal_state(model, wrapper.optimizer, ref_model, ref_opt)
    assert (wrapper.num_skipped, wrapper.num_nonfinite,
            wrapper.consecutive_skips) == (1, 1, 0)
    bn = model.net[1]
    assert int(bn.num_batches_tracked) == 2 * acc  # windows 0 and 2 only


def test_clean_run_matches_reference():
    """Without faults the guard trains exactly as plain accumulation."""
    batches = _batches(WINDOWS * 4)
    model = _Net().train()
    wrapper = _guarded(model, 'AdamW', 4)
    for it, x in enumerate(batches):
        _train_step(model, wrapper, it, x)
    ref_model, ref_opt = _reference('AdamW', 4, batches, range(WINDOWS))
    _assert_equal_state(model, wrapper.optimizer, ref_model, ref_opt)
    assert wrapper.num_skipped == wrapper.num_nonfinite == 0


def test_two_bad_micro_batches_in_one_window_count_one_skip():
    batches = _batches(WINDOWS * 4)
    model = _Net().train()
    wrapper = _guarded(model, 'SGD', 4, nonfinite_policy='skip',
                       max_consecutive_skips=2)
    for it, x in enumerate(batches):
        # max_consecutive_skips counts windows: a second NaN in the same
        # (already void) window does not end training
        _train_step(model, wrapper, it, x, 'nan' if it in (4, 6) else None)
    ref_model, ref_opt = _reference('SGD', 4, batches, windows=(0, 2))
    _assert_equal_state(model, wrapper.optimizer, ref_model, ref_opt)
    assert (wrapper.num_skipped, wrapper.num_nonfinite) == (1, 2)


@pytest.mark.parametrize('pos', range(4))
def test_raise_names_the_micro_batch(pos):
    batches = _batches(WINDOWS * 4)
    model = _Net().train()
    wrapper = _guarded(model, 'AdamW', 4)  # policy 'raise', no hook
    for it in range(4):
        _train_step(model, wrapper, it, batches[it])
    before = copy.deepcopy(model.state_dict())
    for it in range(4, 4 + pos):
        _train_step(model, wrapper, it, batches[it])
    with pytest.raises(NonFiniteLossError) as info:
        _train_step(model, wrapper, 4 + pos, batches[4 + pos], 'forward')
    assert f'iteration {5 + pos} (the total loss was not finite) in ' \
           f'micro-batch {pos} (0-based) of the 4-iteration accumulation ' \
           f'window of iterations 5-8' in str(info.value)
    # the parameters are the last update's and the buffers those from before
    # the window: a checkpoint saved now is clean
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_short_last_window_is_named_by_its_length():
    # 10 iterations with accumulative_counts=4: windows 1-4, 5-8, 9-10
    model = _Net().train()
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='NonFiniteGuardOptimWrapper', accumulative_counts=4,
        optimizer=OPTIMIZERS['SGD'](model.parameters())))
    wrapper.initialize_count_status(model, 0, 10)
    batches = _batches(10)
    for it in range(9):
        _train_step(model, wrapper, it, batches[it])
    with pytest.raises(NonFiniteLossError,
                       match='micro-batch 1 .* 2-iteration accumulation '
                             'window of iterations 9-10'):
        _train_step(model, wrapper, 9, batches[9], 'nan')


def test_no_optim_context_warns_that_buffers_cannot_be_restored():
    model = _Net().train()
    wrapper = _guarded(model, 'SGD', 1, nonfinite_policy='skip')
    loss = model(_batches(1)[0], fault='nan')['loss']
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    try:
        wrapper.update_params(loss)
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert any('cannot be restored' in r.getMessage() for r in records)


def test_buffer_snapshot_restores_replaced_and_resized_buffers():
    bn = nn.BatchNorm1d(2)
    bn.register_buffer('bank', torch.arange(3.))
    snap = BufferSnapshot()
    snap.take(bn)
    bn.running_mean.fill_(5.)  # in place, as BN does
    bn.bank = torch.zeros(7)  # replaced by a buffer of another shape
    snap.restore()
    assert bn.running_mean.tolist() == [0., 0.]
    assert bn.bank.tolist() == [0., 1., 2.]
    # the storage is reused while the layout holds
    bn.running_var.fill_(3.)
    snap.take(bn)
    bn.running_var.fill_(9.)
    snap.restore()
    assert bn.running_var.tolist() == [3., 3.]
    with pytest.raises(RuntimeError, match='before take'):
        BufferSnapshot().restore()
