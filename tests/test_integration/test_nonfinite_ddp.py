"""Non-finite losses on one DDP rank only (2 gloo processes, real tiny
Faster R-CNN through mmengine's Runner), and the MATL head under DDP.

Rank 1 alone gets a non-finite value at iteration 2 (index 1): in its RPN
box loss, or as a NaN input to its backbone (whose BatchNorm layers train, so
rank 1's running statistics go NaN in that forward pass). DDP averages the
gradients, so rank 0 would receive the NaN too; the guard's all-reduced
verdict must make both ranks skip (or both raise), and leave parameters,
optimizer state and buffers as they were before the iteration.

BatchNorm statistics in training mode are per rank under mmengine's DDP
(``broadcast_buffers=False``, no SyncBN on CPU): each rank's must come back to
its own values from before the bad iteration; ``num_batches_tracked`` counts
the same forward passes on both.
"""
import copy
import math

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from _helpers import dist_run, load_tool, make_ddp_cfg, tiny_cfg
from mmdet_alwa.engine.optimizers import NonFiniteLossError

CONFIG = 'configs/_base_/faster_rcnn_r50_voc.py'
MATL = 'configs/matl/faster_rcnn_r50_matl_voc.py'
BAD_ITER, BAD_RANK = 1, 1


def _state(runner):
    model = runner.model.module
    return dict(params={k: v.detach().clone()
                        for k, v in model.named_parameters()},
                buffers={k: v.clone() for k, v in model.named_buffers()},
                optim=copy.deepcopy(
                    runner.optim_wrapper.optimizer.state_dict()['state']))


class _Fault(Hook):
    """Plants the fault on one rank and records the states around it."""

    priority = 'VERY_HIGH'

    def __init__(self, rank, where, value, window_start):
        self.active = rank == BAD_RANK
        self.where, self.value = where, value
        self.window_start = window_start
        self.armed = False
        self.states = {}

    def before_run(self, runner):
        model = runner.model.module
        if self.where == 'loss':
            model.rpn_head.loss_bbox.register_forward_hook(
                lambda m, a, out: out * self.value if self.armed else None)
        else:
            model.backbone.register_forward_pre_hook(
                lambda m, args: (args[0] * self.value,) if self.armed
                else None)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.armed = self.active and runner.iter == BAD_ITER
        if runner.iter == self.window_start:
            self.states['before'] = _state(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter == BAD_ITER:
            self.states['after'] = _state(runner)
        self.armed = False


def _worker(rank, world_size, data, work_dir, where, value, policy, acc=1):
    torch.set_num_threads(1)
    cfg = tiny_cfg(CONFIG, f'{work_dir}/r{rank}', data, max_iters=3,
                   val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.model.backbone.norm_eval = False  # BN statistics move
    cfg.optim_wrapper.type = 'NonFiniteGuardOptimWrapper'
    cfg.optim_wrapper.nonfinite_policy = policy
    cfg.optim_wrapper.accumulative_counts = acc
    cfg.default_hooks.nonfinite_guard = dict(type='NonFiniteGuardHook')
    runner = Runner.from_cfg(make_ddp_cfg(cfg))
    # the window of BAD_ITER starts here (mmengine aligns windows to acc)
    fault = _Fault(rank, where, value, BAD_ITER - BAD_ITER % acc)
    runner.register_hook(fault)
    error = None
    try:
        runner.train()
    except NonFiniteLossError as e:
        error = str(e)
    skips = runner.message_hub.log_scalars.get('train/nonfinite_skips')
    return dict(states=fault.states, end=_state(runner), error=error,
                skips=skips.current() if skips else None,
                num_skipped=runner.optim_wrapper.num_skipped)


def _assert_same(a, b, what):
    assert a.keys() == b.keys(), what
    for key in a:
        if isinstance(a[key], dict):
            _assert_same(a[key], b[key], f'{what}.{key}')
        else:
            assert torch.equal(a[key], b[key]), f'{what}.{key}'


def _finite(state):
    return all(torch.isfinite(v.float()).all() for group in
               (state['params'], state['buffers']) for v in group.values())


@pytest.mark.parametrize('where,value,acc', [('loss', math.inf, 1),
                                             ('forward', math.nan, 2)])
def test_one_rank_nonfinite_skips_on_all_ranks(where, value, acc, tiny_data,
                                               tmp_path):
    """acc=2: iterations 1-2 are a window (the first under DDP's no_sync,
    so only rank 1's local gradients are NaN there), 3 a short one."""
    results = dist_run(_worker, 2, tiny_data, str(tmp_path), where, value,
                       'skip', acc, timeout=240)
    for rank, r in enumerate(results):
        assert r['error'] is None
        # counted on every rank, not only the one with the bad value
        assert r['num_skipped'] == 1 and r['skips'] == 1, rank
        # the window left no trace: parameters, optimizer state and this
        # rank's own buffers (BN statistics: NaN on rank 1 without restore)
        _assert_same(r['states']['before'], r['states']['after'],
                     f'rank {rank}')
        assert _finite(r['end']), rank
        # 3 forward passes, those of the void window (acc of them) undone
        assert int(r['end']['buffers']['backbone.bn1.num_batches_tracked']) \
            == 3 - acc
    r0, r1 = (r['end'] for r in results)
    _assert_same(r0['params'], r1['params'], 'params')
    _assert_same(r0['optim'], r1['optim'], 'optimizer state')
    # the ranks trained on other images: per-rank BN statistics differ
    assert not torch.equal(r0['buffers']['backbone.bn1.running_mean'],
                           r1['buffers']['backbone.bn1.running_mean'])


def test_one_rank_nonfinite_raises_on_all_ranks(tiny_data, tmp_path):
    r0, r1 = dist_run(_worker, 2, tiny_data, str(tmp_path), 'loss',
                      math.nan, 'raise', timeout=240)
    assert 'iteration 2 (the loss of another rank was not finite)' \
        in r0['error']
    assert 'iteration 2 (non-finite loss terms: loss_rpn_bbox)' in r1['error']
    for rank, r in enumerate((r0, r1)):
        _assert_same(r['states']['before'], r['end'], f'rank {rank}')
    _assert_same(r0['end']['params'], r1['end']['params'], 'params')


# ------------------------------------------------------------- MATL head
def _tensors(tree, prefix=''):
    """Every tensor of a state dict, its metadata included (a head may keep
    state there), by a path name."""
    out = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, dict):
            out.update(_tensors(value, name + '/'))
    return out


def _matl_worker(rank, world_size, data, work_dir, box_labels):
    torch.set_num_threads(1)
    cfg = tiny_cfg(MATL, f'{work_dir}/r{rank}', data, max_iters=3,
                   val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.model.roi_head.box_clusters = box_labels
    runner = Runner.from_cfg(make_ddp_cfg(cfg))
    runner.train()
    head = runner.model.module.roi_head
    sd = head.state_dict()
    meta = getattr(sd, '_metadata', {})
    return dict(state=_tensors(dict(sd)), meta=_tensors(dict(meta)),
                type=type(head).__name__,
                loss=runner.message_hub.get_scalar(
                    'train/loss_triplet').current())


def test_matl_head_state_identical_on_ranks(tiny_data, tmp_path):
    tool = load_tool('tools/analysis_tools/cluster_boxes.py')
    cfg = tiny_cfg(MATL, str(tmp_path), tiny_data)
    cfg.dump(str(tmp_path / 'cfg.py'))
    labels = str(tmp_path / 'box_labels.json')
    tool.main([str(tmp_path / 'cfg.py'), '--out', labels, '--k', '3',
               '--k-range', '2', '4'])
    r0, r1 = dist_run(_matl_worker, 2, tiny_data, str(tmp_path), labels,
                      timeout=240)
    assert r0['type'] == 'TripletRoIHead'
    # the ranks saw other images (their local triplet losses differ) ...
    assert r0['loss'] != r1['loss']
    # ... and hold the same head: parameters, buffers and whatever it keeps
    # in the state dict's metadata
    _assert_same(r0['state'], r1['state'], 'roi_head state_dict')
    _assert_same(r0['meta'], r1['meta'], 'roi_head state_dict metadata')
    assert len(r0['state']) + len(r0['meta']) > 0
