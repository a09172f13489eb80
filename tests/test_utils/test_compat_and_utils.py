"""The torch >= 2.6 checkpoint fix and the launch helpers."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from mmdet_alwa.utils import (check_dataset_paths, missing_dataset_paths,
                              setup_cpu_distributed)


def test_mmengine_checkpoint_with_message_hub_loads(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    torch.save(dict(state_dict={'w': torch.ones(2)},
                    message_hub=dict(log_scalars={'loss': buffer})), path)
    # what torch >= 2.6 does by default, and why mmengine fails without us
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert ckpt['message_hub']['log_scalars']['loss'].current() == 1.5


def test_missing_dataset_paths_walks_wrappers(tmp_path):
    (tmp_path / 'voc' / 'VOC2007').mkdir(parents=True)
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=3, dataset=dict(
            type='ConcatDataset', datasets=[
                dict(data_root=str(tmp_path / 'voc'),
                     ann_file='VOC2007/trainval.txt'),
                dict(data_root=str(tmp_path / 'nowhere'),
                     ann_file='x.txt')])))))
    missing = missing_dataset_paths(cfg)
    assert missing == [str(tmp_path / 'voc' / 'VOC2007/trainval.txt'),
                       str(tmp_path / 'nowhere')]
    with pytest.raises(FileNotFoundError, match='Preparing datasets'):
        check_dataset_paths(cfg)


def test_setup_cpu_distributed_is_a_no_op_without_launcher():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'none') is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    if not torch.cuda.is_available():  # with CUDA mmengine handles mpi
        with pytest.raises(ValueError, match='launcher'):
            setup_cpu_distributed(cfg, 'mpi')
