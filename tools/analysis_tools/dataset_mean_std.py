"""Print the RGB mean and std of a config's training images (Briody & Aygen
normalises with the pretraining set's own statistics).

    python tools/analysis_tools/dataset_mean_std.py configs/simclr/simclr_r50_voc.py

Paste the two lists into the config's ``data_mean`` / ``data_std``.
"""
import argparse

import mmcv
import numpy as np
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdet_alwa  # noqa: F401  (registers UnlabeledImageDataset)


def mean_std(paths, max_images=None, seed=0):
    """Per-channel RGB mean and std (0-255) over all pixels of the images."""
    paths = list(paths)
    if not paths:
        raise ValueError('no images to measure')
    if max_images and len(paths) > max_images:
        paths = list(np.random.default_rng(seed).choice(
            paths, max_images, replace=False))
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for p in paths:
        img = mmcv.imread(p, channel_order='rgb').reshape(-1, 3)
        img = img.astype(np.float64)
        total += img.sum(0)
        total_sq += (img ** 2).sum(0)
        count += len(img)
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean ** 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--max-images', type=int, default=2000,
                        help='a random sample of this many images (0: all)')
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    ds_cfg = cfg.train_dataloader.dataset
    if ds_cfg.get('type') != 'UnlabeledImageDataset':
        ds_cfg = dict(type='UnlabeledImageDataset', dataset=ds_cfg)
    ds = DATASETS.build(dict(ds_cfg, pipeline=[]))
    mean, std = mean_std((ds.get_data_info(i)['img_path'] for i in range(len(ds))),
                         args.max_images)
    print(f'data_mean = {np.round(mean, 3).tolist()}')
    print(f'data_std = {np.round(std, 3).tolist()}')
    return mean, std


if __name__ == '__main__':
    main()
