"""SimCLR's config turns BN into SyncBN under DDP (mmengine's ``sync_bn``),
so that BN statistics cover the whole batch (Chen et al., docs/simclr.md)."""
import os.path as osp
import sys

import torch.nn as nn
from mmengine.config import Config

from _helpers import config_path, dist_run, make_ddp_cfg

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'test_models'))
from test_simclr import tiny_simclr_cfg  # noqa: E402

CFG = 'configs/simclr/simclr_r50_voc.py'


def _bn_layers(model: nn.Module):
    plain = sum(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)
                for m in model.modules())
    sync = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    return plain, sync


def test_config_asks_for_torch_syncbn():
    assert Config.fromfile(config_path(CFG)).sync_bn == 'torch'


def _build(rank, world_size, work_dir, data_root):
    from mmengine.registry import MODEL_WRAPPERS
    from mmengine.runner import Runner

    class KeepModule(nn.Module):
        """Stands in for DDP, which refuses SyncBatchNorm on the CPU (torch:
        'SyncBatchNorm layers only work with GPU modules'); mmengine's Runner
        converts BN before it wraps, and this keeps what it was given."""

        def __init__(self, module, **kwargs):
            super().__init__()
            self.module = module

    cfg = tiny_simclr_cfg(osp.join(work_dir, str(rank)), data_root)
    if world_size > 1:
        sync_bn = cfg.sync_bn
        make_ddp_cfg(cfg)  # gloo: drops sync_bn (SyncBatchNorm needs CUDA)
        assert cfg.sync_bn is None
        cfg.sync_bn = sync_bn  # what a CUDA (NCCL) run keeps
        MODEL_WRAPPERS.register_module(module=KeepModule, force=True)
        cfg.model_wrapper_cfg = dict(type='KeepModule')
    runner = Runner.from_cfg(cfg)  # wraps (and converts) the model
    model = getattr(runner.model, 'module', runner.model)
    return type(runner.model).__name__, _bn_layers(model)


def test_ddp_converts_bn_and_one_process_does_not(tiny_data, tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = tiny_simclr_cfg(str(tmp_path / 'plain'), tiny_data)
    plain_bn, _ = _bn_layers(MODELS.build(cfg.model))
    assert plain_bn > 0  # ResNet's and the projector's BN
    # one process: mmengine leaves (reverts to) plain BN
    assert _build(0, 1, str(tmp_path), tiny_data)[1] == (plain_bn, 0)
    for wrapper, (plain, sync) in dist_run(_build, 2, str(tmp_path),
                                           tiny_data):
        assert wrapper == 'KeepModule'
        assert (plain, sync) == (0, plain_bn)
