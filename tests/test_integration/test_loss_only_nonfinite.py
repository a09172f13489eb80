"""The rules over TorchJD (the loss-only FAMO, RLW, GLS, IMTL-L, STCH and the
gradient aggregators UPGrad, MGDA, PCGrad, IMTL-G, Aligned-MTL, DualProj,
CAGrad) with a NaN loss, on a tiny Faster R-CNN through mmengine's Runner
(all four RPN/RoI losses, configs/balancers/faster_rcnn_r50_<rule>_voc.py).

- one process, the RPN classification loss NaN at iteration 2: no rank has
  a finite value, the same-iteration rules keep the weights of iteration 1
  (``num_fallbacks`` 1), every rule counts ``nonfinite_rpn_cls`` = 1, the
  guard (``nonfinite_policy='skip'``) skips that step, and the weights stay
  finite after it;
- two gloo ranks, the NaN on rank 1 only: the loss-only rules use the
  mean of the finite rank (no fallback); the Gramian summed over the ranks
  is NaN, so a gradient aggregator keeps the last weights on both ranks
  (one fallback each). Both ranks count the NaN and hold the same state.
"""
import math

import pytest
import torch
from mmengine.runner import Runner

from _helpers import dist_run, make_ddp_cfg, tiny_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.weighting import ScalarizerWeighting

RULES = ('famo', 'rlw', 'gls', 'imtl_l', 'stch', 'upgrad', 'mgda',
         'pcgrad', 'imtl_g', 'aligned_mtl', 'dualproj', 'cagrad')
GRAMIAN = ('upgrad', 'mgda', 'pcgrad', 'imtl_g', 'aligned_mtl', 'dualproj',
           'cagrad')
TASKS = ('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg')
BAD_ITER = 1


def _runner(rule, work_dir, data, iters, rank=None):
    cfg = tiny_cfg(f'configs/balancers/faster_rcnn_r50_{rule}_voc.py',
                   work_dir, data, max_iters=iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.experiment_name = work_dir.replace('/', '_')
    cfg.optim_wrapper.nonfinite_policy = 'skip'
    cfg.default_hooks.pop('nonfinite_guard', None)
    if rank is not None:
        cfg = make_ddp_cfg(cfg)
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if rank is not None else runner.model

    def poison(module, args, out):
        if runner.iter == BAD_ITER and rank in (None, 1):
            return out * math.nan
        return None

    model.rpn_head.loss_cls.register_forward_hook(poison)
    return runner


def _result(runner, rule):
    hook = next(h for h in runner.hooks if isinstance(h, LossWeightingHook))
    hub = runner.message_hub
    return dict(
        state=hook.rule.state_dict(),
        nonfinite=dict(hook.rule.num_nonfinite),
        history={t: list(hub.get_scalar(
            f'train/{rule}/weight_{t}')._log_history) for t in TASKS},
        fallbacks=getattr(hook.rule, 'num_fallbacks', None),
        scalarized=isinstance(hook.rule, ScalarizerWeighting))


@pytest.mark.parametrize('rule', RULES)
def test_nan_loss_falls_back_and_is_counted(rule, tiny_data, tmp_path):
    runner = _runner(rule, str(tmp_path), tiny_data, 3)
    runner.train()
    out = _result(runner, rule)
    assert out['nonfinite'] == dict(rpn_cls=1, rpn_reg=0, roi_cls=0,
                                    roi_reg=0)
    assert all(math.isfinite(w) for ws in out['history'].values()
               for w in ws)
    # the optimizer wrapper skipped the poisoned step
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    if out['scalarized']:  # the weights of iteration 1 again
        assert out['fallbacks'] == 1
        for ws in out['history'].values():
            assert ws[BAD_ITER] == ws[BAD_ITER - 1]
    # the weights follow the losses (or their gradients): they moved
    # again; not RLW's (random), nor those of UPGrad, DualProj and CAGrad,
    # which are the mean's whenever no two gradients conflict
    if rule not in ('rlw', 'upgrad', 'dualproj', 'cagrad'):
        assert any(ws[2] != ws[1] for ws in out['history'].values())


def _ddp_worker(rank, world_size, rule, work_dir, data):
    torch.set_num_threads(1)
    runner = _runner(rule, f'{work_dir}/r{rank}', data, 2, rank=rank)
    runner.train()
    return _result(runner, rule)


@pytest.mark.parametrize('rule', ['famo', 'gls', 'upgrad'])
def test_nan_on_one_rank_is_counted_on_both(rule, tiny_data, tmp_path):
    r0, r1 = dist_run(_ddp_worker, 2, rule, str(tmp_path), tiny_data,
                      timeout=200)
    for r in (r0, r1):
        assert r['nonfinite']['rpn_cls'] == 1
        # loss-only: rank 0's finite loss was used; gradient aggregation:
        # the summed Gramian is NaN, the last weights are kept
        assert r['fallbacks'] == (1 if rule in GRAMIAN else 0)
    assert r0['state'] == r1['state'] and r0['history'] == r1['history']
