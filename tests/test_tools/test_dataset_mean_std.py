import glob
import os.path as osp

import mmcv
import numpy as np
from _helpers import load_tool, tiny_cfg


def test_mean_std_of_training_images(tiny_data, tmp_path):
    cfg = tiny_cfg('configs/_base_/faster_rcnn_r50_voc.py', str(tmp_path),
                   tiny_data)
    cfg.dump(str(tmp_path / 'cfg.py'))
    tool = load_tool('tools/analysis_tools/dataset_mean_std.py')
    mean, std = tool.main([str(tmp_path / 'cfg.py')])
    pixels = np.concatenate([
        mmcv.imread(p, channel_order='rgb').reshape(-1, 3)
        for p in glob.glob(osp.join(tiny_data, 'train', '*.png'))])
    np.testing.assert_allclose(mean, pixels.mean(0))
    np.testing.assert_allclose(std, pixels.std(0))
