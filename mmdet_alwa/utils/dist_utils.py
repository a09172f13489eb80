"""Distributed training on machines without CUDA (gloo).

mmengine 0.10.7 assumes CUDA for distributed runs: its ``init_dist`` calls
``torch.cuda.set_device`` and the default ``MMDistributedDataParallel`` wrapper
passes ``device_ids=[LOCAL_RANK]``. :func:`setup_cpu_distributed` applies the
three workarounds (see DEVELOPERS.md); with CUDA it does nothing and mmengine
initialises NCCL as usual.
"""
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.config import Config


def _slurm_env() -> None:
    """Translate slurm's variables into torch.distributed's env:// ones."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare ``cfg`` (and the process group) for gloo DDP without CUDA.

    Args:
        cfg: the run's config, modified in place.
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.

    Returns:
        True when the CPU/gloo path was taken.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'launcher {launcher!r} is not supported without '
                         f'CUDA; use "pytorch" (torchrun) or "slurm"')
    if not dist.is_initialized():
        if launcher == 'slurm':
            _slurm_env()
        # 1. before the Runner: mmengine's init_dist would call cuda APIs
        dist.init_process_group(backend='gloo', init_method='env://')
    # 2. the Runner reads the backend from env_cfg
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = \
        'gloo'
    # 3. DDP on CPU modules must not be given device ids
    wrapper = dict(cfg.get('model_wrapper_cfg') or
                   dict(type='MMDistributedDataParallel'))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True
