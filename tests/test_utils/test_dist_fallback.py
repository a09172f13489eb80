"""setup_cpu_distributed's gloo fallback is loud: a warning naming why CUDA
is unusable, and a refusal when the environment says the job has GPUs
(CUDA_VISIBLE_DEVICES, slurm's GPU variables) unless CPU training is
explicitly allowed (MMDET_ALWA_ALLOW_CPU_DIST=1, --allow-cpu-dist)."""
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import MMLogger

from _helpers import _free_port, load_tool
from mmdet_alwa.utils import dist_utils, prepare_run
from mmdet_alwa.utils.dist_utils import (ALLOW_CPU_DIST_ENV, SLURM_GPU_VARS,
                                         cpu_dist_allowed, gpus_expected,
                                         setup_cpu_distributed)

GPU_VARS = ('CUDA_VISIBLE_DEVICES', ALLOW_CPU_DIST_ENV) + SLURM_GPU_VARS


@pytest.fixture
def cpu_node(monkeypatch):
    """No CUDA, no GPU variable, a 1-process torchrun environment."""
    for var in GPU_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    assert not dist.is_initialized()
    yield monkeypatch
    if dist.is_initialized():
        dist.destroy_process_group()


def _log_file(tmp_path, name):
    """A fresh current MMLogger writing to a file; returns its path."""
    path = tmp_path / f'{name}.log'
    MMLogger.get_instance(f'{name}_{_free_port()}', log_file=str(path))
    return path


@pytest.mark.parametrize('env,expected', [
    ({}, None),
    ({'CUDA_VISIBLE_DEVICES': ''}, None),
    ({'CUDA_VISIBLE_DEVICES': '-1'}, None),
    ({'CUDA_VISIBLE_DEVICES': 'NoDevFiles'}, None),  # SGE without GPUs
    ({'CUDA_VISIBLE_DEVICES': '0'}, 'CUDA_VISIBLE_DEVICES=0'),
    ({'CUDA_VISIBLE_DEVICES': '2,3'}, 'CUDA_VISIBLE_DEVICES=2,3'),
    ({'SLURM_GPUS_ON_NODE': '0'}, None),
    ({'SLURM_GPUS_ON_NODE': '4'}, 'SLURM_GPUS_ON_NODE=4'),
    ({'SLURM_JOB_GPUS': '0,1'}, 'SLURM_JOB_GPUS=0,1'),
    ({'SLURM_GPUS_PER_NODE': 'a100:8'}, 'SLURM_GPUS_PER_NODE=a100:8'),
    ({'SLURM_GPUS_PER_NODE': 'a100:0'}, None),
    ({'SLURM_STEP_GPUS': '0'}, 'SLURM_STEP_GPUS=0'),
    ({'SLURM_NTASKS': '8'}, None),  # a slurm job without GPUs
])
def test_gpus_expected(env, expected):
    assert gpus_expected(env) == expected


def test_allow_variable_values():
    assert cpu_dist_allowed({ALLOW_CPU_DIST_ENV: '1'}) is True
    assert cpu_dist_allowed({ALLOW_CPU_DIST_ENV: '0'}) is False
    assert cpu_dist_allowed({}) is False
    with pytest.raises(ValueError, match=f'{ALLOW_CPU_DIST_ENV}=.maybe.'):
        cpu_dist_allowed({ALLOW_CPU_DIST_ENV: 'maybe'})


def test_cpu_only_torch_falls_back_with_a_warning(cpu_node, tmp_path):
    cpu_node.setattr(torch.version, 'cuda', None)
    log = _log_file(tmp_path, 'cpu_build')
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert dist.get_backend() == 'gloo'
    text = log.read_text()
    assert 'WARNING' in text
    assert 'falls back to gloo' in text
    assert 'CPU-only build (torch.version.cuda is None)' in text
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


def test_cuda_torch_without_devices_names_the_driver(cpu_node, tmp_path):
    cpu_node.setattr(torch.version, 'cuda', '13.0')
    log = _log_file(tmp_path, 'no_driver')
    assert setup_cpu_distributed(Config(), 'pytorch') is True
    text = log.read_text()
    assert 'built with CUDA 13.0 but torch.cuda.is_available() is False' \
        in text and 'no NVIDIA driver' in text


@pytest.mark.parametrize('var,value', [('CUDA_VISIBLE_DEVICES', '0,1'),
                                       ('SLURM_GPUS_ON_NODE', '8'),
                                       ('SLURM_STEP_GPUS', '0')])
@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_refuses_when_gpus_were_expected(cpu_node, var, value, launcher):
    cpu_node.setenv(var, value)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    with pytest.raises(ValueError) as err:
        setup_cpu_distributed(cfg, launcher)
    msg = str(err.value)
    assert msg.startswith(f'{var}={value} says this job has GPUs, but torch')
    assert 'install a CUDA build of torch' in msg
    assert '--allow-cpu-dist' in msg and f'{ALLOW_CPU_DIST_ENV}=1' in msg
    # nothing was started or changed
    assert not dist.is_initialized()
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


def test_opt_in_by_variable(cpu_node, tmp_path):
    cpu_node.setenv('CUDA_VISIBLE_DEVICES', '0')
    cpu_node.setenv(ALLOW_CPU_DIST_ENV, '1')
    log = _log_file(tmp_path, 'opt_in_env')
    assert setup_cpu_distributed(Config(), 'pytorch') is True
    assert dist.get_backend() == 'gloo'
    assert 'CUDA_VISIBLE_DEVICES=0 is ignored (CPU training was allowed)' \
        in log.read_text()


def test_opt_in_through_prepare_run(cpu_node, tmp_path):
    """tools/train.py's --allow-cpu-dist reaches setup_cpu_distributed."""
    cpu_node.setenv('SLURM_GPUS_ON_NODE', '4')
    cfg = Config(dict(model_wrapper_cfg=dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)))
    with pytest.raises(ValueError, match='SLURM_GPUS_ON_NODE=4 says'):
        prepare_run(cfg, 'pytorch')
    prepare_run(cfg, 'pytorch', allow_cpu_dist=True)
    assert dist.get_backend() == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         find_unused_parameters=True,
                                         device_ids=None)


def test_tool_flags_parse():
    for name in ('train', 'test'):
        tool = load_tool(f'tools/{name}.py', f'tool_{name}')
        pos = ['c.py'] + (['x.pth'] if name == 'test' else [])
        assert tool.parse_args(pos).allow_cpu_dist is False
        assert tool.parse_args(pos + ['--allow-cpu-dist']).allow_cpu_dist


def test_with_cuda_nothing_happens(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0')
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'pytorch') is False
    assert dist_utils.distributed_backend() == 'nccl'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_sync_bn_is_dropped_on_gloo_with_a_warning(cpu_node, tmp_path):
    """torch's SyncBatchNorm raises on CPU tensors: a config asking for it
    (the SimCLR config's sync_bn='torch') trains per-process BN on gloo, and
    says so once."""
    cpu_node.setattr(torch.version, 'cuda', None)
    log = _log_file(tmp_path, 'sync_bn')
    cfg = Config(dict(sync_bn='torch'))
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert cfg.sync_bn is None
    text = log.read_text()
    assert text.count("sync_bn='torch' is not applied") == 1
