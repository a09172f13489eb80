"""Gradient aggregation under DDP (2 gloo ranks, a tiny Faster R-CNN through
mmengine's Runner, configs/balancers/faster_rcnn_r50_<rule>_voc.py): each
rank forms the Gramian of its own batch; the hook sums them and divides by
W^2 = 4, the Gramian of the global batch's representation Jacobian (DDP
averages the ranks' losses). Oracle: the ranks' local Gramians, recorded
where they are formed, combined here, and TorchJD's weighting applied to
that by this test; both ranks must apply those weights."""
from unittest import mock

import pytest
import torch
from mmengine.runner import Runner
from torchjd import aggregation as A

from _helpers import dist_run, make_ddp_cfg, tiny_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.loss_weighting import representation

TASKS = ('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg')
ITERS = 2


def _worker(rank, world_size, rule, work_dir, data):
    torch.set_num_threads(1)
    cfg = tiny_cfg(f'configs/balancers/faster_rcnn_r50_{rule}_voc.py',
                   f'{work_dir}/r{rank}', data, max_iters=ITERS)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.experiment_name = f'{work_dir}_r{rank}'.replace('/', '_')
    runner = Runner.from_cfg(make_ddp_cfg(cfg))
    hook = next(h for h in runner.hooks if isinstance(h, LossWeightingHook))
    local, applied = [], []
    original = representation.representation_gramian

    def spy(*args, **kwargs):
        g = original(*args, **kwargs)
        local.append(g.clone())
        return g

    prepare = hook.rule.prepare

    def spy_prepare(losses, gramian=None):
        w = prepare(losses, gramian=gramian)
        applied.append([float(w[t]) for t in TASKS])
        return w

    hook.rule.prepare = spy_prepare
    with mock.patch.object(representation, 'representation_gramian', spy):
        runner.train()
    hub = runner.message_hub
    return dict(local=[g.tolist() for g in local], applied=applied,
                sqnorm={t: list(hub.get_scalar(
                    f'train/{rule}/sqnorm_{t}')._log_history) for t in TASKS},
                state=hook.rule.state_dict())


@pytest.mark.parametrize('rule,weighting', [('upgrad', A.UPGradWeighting),
                                            ('mgda', A.MGDAWeighting)])
def test_global_gramian_and_equal_weights(rule, weighting, tiny_data,
                                          tmp_path):
    r0, r1 = dist_run(_worker, 2, rule, str(tmp_path), tiny_data,
                      timeout=300)
    assert r0['applied'] == r1['applied'] and r0['state'] == r1['state']
    assert len(r0['local']) == len(r1['local']) == ITERS
    for it in range(ITERS):
        g0 = torch.tensor(r0['local'][it], dtype=torch.float64)
        g1 = torch.tensor(r1['local'][it], dtype=torch.float64)
        assert not torch.allclose(g0, g1)  # the ranks' batches differ
        global_g = (g0 + g1) / 4
        for i, t in enumerate(TASKS):
            assert r0['sqnorm'][t][it] == pytest.approx(
                global_g[i, i].item(), rel=1e-9)
        # at unit trace: TorchJD's UPGrad takes a Gramian of trace < 1e-4
        # (these are ~1e-6) for zero and returns the mean
        expected = weighting()(global_g / global_g.trace()).tolist()
        assert expected != pytest.approx([1 / len(TASKS)] * len(TASKS))
        assert r0['applied'][it] == pytest.approx(expected, rel=1e-6,
                                                  abs=1e-9)
