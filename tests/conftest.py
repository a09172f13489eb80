import os

# `make test` runs two pytest workers on two cores: one thread each, and idle
# OpenMP threads that sleep instead of spinning (read when torch loads)
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
# the gloo DDP tests run CPU processes on purpose, also where the environment
# names GPUs (CUDA_VISIBLE_DEVICES, slurm) for a CPU-only torch; the refusal
# itself is tested with this variable removed (test_dist_fallback.py)
os.environ.setdefault('MMDET_ALWA_ALLOW_CPU_DIST', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get('MMDET_ALWA_TEST_THREADS', '1')))

import mmdet_alwa  # noqa: E402,F401  (registers our modules)
from _helpers import make_tiny_data  # noqa: E402


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    """A generated COCO-format dataset: 8 train / 4 val images, 96x64 px."""
    return make_tiny_data(str(tmp_path_factory.mktemp('tiny_data')))
