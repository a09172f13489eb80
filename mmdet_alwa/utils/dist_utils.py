"""Distributed training on machines without CUDA (gloo).

mmengine 0.10.7 assumes CUDA for distributed runs: its ``init_dist`` calls
``torch.cuda.set_device`` and the default ``MMDistributedDataParallel`` wrapper
passes ``device_ids=[LOCAL_RANK]``. :func:`setup_cpu_distributed` applies the
three workarounds (see DEVELOPERS.md); with CUDA it does nothing and mmengine
initialises NCCL as usual.

The CPU fallback is never silent: it logs a warning naming why CUDA is not
usable (:func:`cpu_fallback_cause`), and it refuses to start when the
environment says that the job was given GPUs (:func:`gpus_expected`: a CPU-only
torch on a GPU node would otherwise train N CPU processes on gloo), unless
``MMDET_ALWA_ALLOW_CPU_DIST=1`` or the tools' ``--allow-cpu-dist`` asks for it.
"""
import logging
import os
import subprocess
from typing import Mapping, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

#: set to 1 to train distributed on CPU processes although GPUs were expected
ALLOW_CPU_DIST_ENV = 'MMDET_ALWA_ALLOW_CPU_DIST'
#: slurm's variables that list the ids of the GPUs given to a job or step
SLURM_GPU_ID_VARS = ('SLURM_JOB_GPUS', 'SLURM_STEP_GPUS')
#: slurm's variables that count GPUs (``[type:]count``; 0 is none)
SLURM_GPU_COUNT_VARS = ('SLURM_GPUS', 'SLURM_GPUS_ON_NODE',
                        'SLURM_GPUS_PER_NODE', 'SLURM_GPUS_PER_TASK')
SLURM_GPU_VARS = SLURM_GPU_ID_VARS + SLURM_GPU_COUNT_VARS
# device lists that name no GPU (SGE sets CUDA_VISIBLE_DEVICES=NoDevFiles)
_NO_DEVICES = ('', '-1', 'none', 'nodevfiles', 'n/a')


def gpus_expected(environ: Optional[Mapping[str, str]] = None
                  ) -> Optional[str]:
    """``'NAME=value'`` of the first variable saying GPUs were given to this
    process (``CUDA_VISIBLE_DEVICES`` or one of :data:`SLURM_GPU_VARS`), or
    None. ``CUDA_VISIBLE_DEVICES=0`` and ``SLURM_JOB_GPUS=0`` name GPU 0;
    a slurm count of 0 (``SLURM_GPUS_ON_NODE=0``) names none."""
    env = os.environ if environ is None else environ
    for name in ('CUDA_VISIBLE_DEVICES',) + SLURM_GPU_VARS:
        value = env.get(name)
        if value is None or value.strip().lower() in _NO_DEVICES:
            continue
        if name in SLURM_GPU_COUNT_VARS and \
                value.strip().rpartition(':')[2] == '0':
            continue
        return f'{name}={value}'
    return None


def cpu_dist_allowed(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether :data:`ALLOW_CPU_DIST_ENV` opts in to CPU distributed training.

    Raises:
        ValueError: the variable has a value that is neither on nor off.
    """
    env = os.environ if environ is None else environ
    value = env.get(ALLOW_CPU_DIST_ENV, '').strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return True
    if value in ('', '0', 'false', 'no', 'off'):
        return False
    raise ValueError(f'{ALLOW_CPU_DIST_ENV}={env[ALLOW_CPU_DIST_ENV]!r}: '
                     f'use 1 (allow CPU distributed training) or 0')


def cpu_fallback_cause() -> str:
    """Why CUDA cannot be used by this process (call when
    ``torch.cuda.is_available()`` is False)."""
    if torch.version.cuda is None:
        return (f'torch {torch.__version__} is a CPU-only build '
                f'(torch.version.cuda is None)')
    return (f'torch {torch.__version__} is built with CUDA '
            f'{torch.version.cuda} but torch.cuda.is_available() is False '
            f'(no NVIDIA driver or no visible device)')


def distributed_backend() -> str:
    """The backend a ``pytorch``/``slurm`` launch would use here: ``'nccl'``
    with CUDA (mmengine's default), else ``'gloo'`` through
    :func:`setup_cpu_distributed`."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


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


def setup_cpu_distributed(cfg: Config, launcher: str,
                          allow_cpu: bool = False) -> bool:
    """Prepare ``cfg`` (and the process group) for gloo DDP without CUDA.

    Args:
        cfg: the run's config, modified in place.
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.
        allow_cpu: train on CPU processes even when :func:`gpus_expected`
            (the tools' ``--allow-cpu-dist``; ``MMDET_ALWA_ALLOW_CPU_DIST=1``
            does the same).

    Returns:
        True when the CPU/gloo path was taken (with a logged warning that
        names the cause).

    Raises:
        ValueError: an unsupported launcher without CUDA, or the environment
            says GPUs were expected and CPU training was not allowed.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'launcher {launcher!r} is not supported without '
                         f'CUDA; use "pytorch" (torchrun) or "slurm"')
    cause = cpu_fallback_cause()
    expected = gpus_expected()
    if expected is not None and not (allow_cpu or cpu_dist_allowed()):
        raise ValueError(
            f'{expected} says this job has GPUs, but {cause}, so distributed '
            f'training would run CPU processes on gloo. Fix: install a CUDA '
            f'build of torch (README "On a GPU machine"; verify with python '
            f'tools/misc/check_install.py --expect-cuda), or to train on the '
            f'CPU anyway pass --allow-cpu-dist or set {ALLOW_CPU_DIST_ENV}=1')
    print_log(
        f'distributed training falls back to gloo on CPU processes: {cause}'
        + (f'; {expected} is ignored (CPU training was allowed)'
           if expected is not None else ''),
        logger='current', level=logging.WARNING)
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
    # 4. torch's SyncBatchNorm runs on CUDA only: per-process BN instead
    if cfg.get('sync_bn'):
        print_log(
            f'sync_bn={cfg.sync_bn!r} is not applied on gloo CPU processes '
            f'(torch\'s SyncBatchNorm needs CUDA): each process keeps its own '
            f'BN statistics', logger='current', level=logging.WARNING)
        cfg.sync_bn = None
    return True
