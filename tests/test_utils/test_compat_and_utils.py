"""Checkpoints under torch >= 2.6, torchvision:// and the launch helpers
(the dataset paths: tests/test_datasets/test_prepare_datasets.py)."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from mmdet_alwa.compat import register_torchvision_fallback
from mmdet_alwa.utils import safe_checkpoint_loading, setup_cpu_distributed


def test_mmengine_checkpoint_with_message_hub_loads(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    torch.save(dict(state_dict={'w': torch.ones(2)},
                    message_hub=dict(log_scalars={'loss': buffer})), path)
    # what torch >= 2.6 does by default (also after import mmdet_alwa), and
    # why mmengine cannot resume without the allow-list
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    with safe_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt['message_hub']['log_scalars']['loss'].current() == 1.5


def test_setup_cpu_distributed_is_a_no_op_without_launcher():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    if not torch.cuda.is_available():  # with CUDA mmengine handles mpi
        with pytest.raises(ValueError, match='launcher'):
            setup_cpu_distributed(cfg, 'mpi')


def test_torchvision_scheme_needs_no_torchvision(monkeypatch):
    """mmdet's ImageNet init_cfg resolves without torchvision (which cannot
    be installed beside torch 2.13); the download itself is mocked."""
    from mmengine.runner import checkpoint as mm_checkpoint
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401
    urls = []
    monkeypatch.setattr(mm_checkpoint, 'load_from_http',
                        lambda url, map_location=None: urls.append(url) or {})
    # what our tools do (prepare_run); the scheme table is restored after
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))
    register_torchvision_fallback()
    CheckpointLoader.load_checkpoint('torchvision://resnet50')
    CheckpointLoader.load_checkpoint('torchvision://resnet101')
    assert [u.rsplit('/', 1)[1].split('-')[0] for u in urls] == \
        ['resnet50', 'resnet101']
    assert all(u.startswith('https://download.pytorch.org/models/')
               for u in urls)
    with pytest.raises(ValueError, match='unknown torchvision model'):
        CheckpointLoader.load_checkpoint('torchvision://resnet5000')


def test_slurm_launcher_on_cpu_uses_gloo(monkeypatch):
    """slurm's variables become torch.distributed's, the group is gloo and
    the config gets the CPU DDP wrapper (a 1-process job)."""
    import torch.distributed as dist

    from _helpers import _free_port
    if torch.cuda.is_available():
        pytest.skip('with CUDA mmengine initialises NCCL itself')
    for var in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_LOCALID', '0')
    monkeypatch.setenv('SLURM_NODELIST', 'node1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    try:
        assert setup_cpu_distributed(cfg, 'slurm') is True
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         device_ids=None)
