"""Real mmdet training through mmengine's Runner on tiny generated data:
train, checkpoint, resume, then test, for a two-stage and a one-stage
detector built from our base configs."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from _helpers import tiny_cfg
from mmdet_alwa.utils import safe_checkpoint_loading

CONFIGS = ['configs/_base_/faster_rcnn_r50_voc.py',
           'configs/_base_/retinanet_r50_voc.py']


@pytest.mark.parametrize('config', CONFIGS, ids=['faster_rcnn', 'retinanet'])
def test_train_checkpoint_resume_test(config, tiny_data, tmp_path):
    work_dir = str(tmp_path / 'run')
    cfg = tiny_cfg(config, work_dir, tiny_data, max_iters=2,
                   checkpoint_interval=2, val_interval=100)
    Runner.from_cfg(cfg).train()
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # the message hub, pickled, is in the checkpoint: under torch >= 2.6
    # (weights_only=True) this load needs mmdet_alwa's allow-list
    with safe_checkpoint_loading():
        saved = torch.load(ckpt, map_location='cpu')
    assert saved['meta']['iter'] == 2

    cfg = tiny_cfg(config, work_dir, tiny_data, max_iters=3,
                   checkpoint_interval=1, val_interval=3)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    with safe_checkpoint_loading():  # as tools/train.py --resume
        runner.train()
    assert runner.iter == 3
    # resumed at 2, so only iteration 3 was run and saved
    assert sorted(osp.basename(p) for p in
                  glob.glob(osp.join(work_dir, 'iter_*.pth'))) == \
        ['iter_2.pth', 'iter_3.pth']
    metrics = runner.test()
    assert 'coco/bbox_mAP' in metrics
    # our runtime base logs scalars to TensorBoard as well as to text
    assert glob.glob(osp.join(work_dir, '*', 'vis_data', 'events.out.*'))
