import os

import pytest
import torch

# two cores: keep one test process from oversubscribing them
torch.set_num_threads(int(os.environ.get('MMDET_ALWA_TEST_THREADS', '2')))

import mmdet_alwa  # noqa: E402,F401  (registers our modules)
from _helpers import make_tiny_data  # noqa: E402


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    """A generated COCO-format dataset: 8 train / 4 val images, 96x64 px."""
    return make_tiny_data(str(tmp_path_factory.mktemp('tiny_data')))
