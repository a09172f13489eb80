import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmdet_alwa.datasets.transforms.simclr import (ColorJitter, GaussianBlur,
                                                   MultiView,
                                                   RandomResizedCrop,
                                                   _adjust_hue)

SIZE = 32
init_default_scope('mmdet')  # as the Runner does: pipelines build from mmdet
CFG = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs',
                               'simclr', 'simclr_r50_voc.py'))


def _pipeline(size=SIZE):
    views = [dict(t) for t in CFG.view_pipeline]
    views[0]['scale'] = size
    return [dict(type='LoadImageFromFile'),
            dict(type='MultiView', transforms=views, num_views=2),
            dict(type='PackMultiViewInputs')]


def _dataset(tiny_data, **kwargs):
    return DATASETS.build(dict(
        type='UnlabeledImageDataset', img_dir=osp.join(tiny_data, 'train'),
        pipeline=_pipeline(), **kwargs))


def _seed(s):
    random.seed(s)  # mmcv's RandomGrayscale draws from `random`
    np.random.seed(s)


def test_two_views_differ_with_right_shapes(tiny_data):
    _seed(0)
    item = _dataset(tiny_data)[0]
    v1, v2 = item['inputs']
    assert v1.shape == v2.shape == (3, SIZE, SIZE)
    assert v1.dtype == v2.dtype == torch.uint8
    assert not torch.equal(v1, v2)
    assert item['data_samples'].img_path.endswith('.png')


def test_deterministic_with_seed(tiny_data):
    ds = _dataset(tiny_data)
    _seed(3)
    a = ds[1]['inputs']
    _seed(3)
    b = ds[1]['inputs']
    _seed(4)
    c = ds[1]['inputs']
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_preprocessor_normalises_views(tiny_data):
    from mmdet.registry import MODELS
    ds = _dataset(tiny_data)
    batch = pseudo_collate([ds[0], ds[1], ds[2]])
    pre = MODELS.build(dict(type='SimCLRDataPreprocessor', mean=[10, 20, 30],
                            std=[2, 4, 8], bgr_to_rgb=True))
    out = pre(batch, training=True)['inputs']
    assert len(out) == 2 and out[0].shape == (3, 3, SIZE, SIZE)
    assert out[0].dtype == torch.float32
    raw = batch['inputs'][0][0].float()[[2, 1, 0]]  # BGR -> RGB
    expected = (raw - torch.tensor([10., 20, 30])[:, None, None]) \
        / torch.tensor([2., 4, 8])[:, None, None]
    torch.testing.assert_close(out[0][0], expected)


def test_dataset_from_detection_config(tiny_data):
    inner = dict(type='CocoDataset', data_root=tiny_data,
                 ann_file='annotations/train.json',
                 data_prefix=dict(img='train/'), pipeline=[])
    ds = DATASETS.build(dict(
        type='UnlabeledImageDataset', pipeline=_pipeline(),
        dataset=dict(type='RepeatDataset', times=3, dataset=inner)))
    folder = _dataset(tiny_data)
    # repeats dropped: the same images as the folder
    def paths(d):
        return sorted(d.get_data_info(i)['img_path'] for i in range(len(d)))
    assert len(ds) == len(folder) == 8 and paths(ds) == paths(folder)
    assert len(ds[0]['inputs']) == 2


def test_dataset_bad_arguments(tiny_data, tmp_path):
    with pytest.raises(ValueError, match='exactly one'):
        DATASETS.build(dict(type='UnlabeledImageDataset'))
    with pytest.raises(ValueError, match='no images'):
        DATASETS.build(dict(type='UnlabeledImageDataset',
                            img_dir=str(tmp_path)))


def test_random_resized_crop_scale_and_fallback():
    img = np.random.randint(0, 255, (40, 60, 3), np.uint8)
    out = RandomResizedCrop(scale=(20, 10))(dict(img=img))
    assert out['img'].shape == (10, 20, 3) and out['img_shape'] == (10, 20)
    # no crop can satisfy the area: central crop with the ratio clamped
    t = RandomResizedCrop(scale=8, crop_scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert t._crop_box(40, 60) == (0, 10, 40, 40)


def test_colour_jitter_and_blur_ranges():
    img = np.random.randint(0, 255, (16, 16, 3), np.uint8)
    same = ColorJitter(prob=0.0)(dict(img=img.copy()))['img']
    assert np.array_equal(same, img)
    # on a grey image saturation, hue and contrast change nothing, so the
    # output is the grey level times the brightness factor, in [0.6, 1.4]
    # for brightness=0.4, whatever the random order of the four
    grey = np.full((16, 16, 3), 100, np.uint8)
    levels = set()
    for seed in range(5):
        np.random.seed(seed)
        out = ColorJitter(prob=1.0)(dict(img=grey.copy()))['img']
        assert out.dtype == np.uint8 and out.shape == grey.shape
        assert (out == out[0, 0, 0]).all()  # still one grey level
        levels.add(int(out[0, 0, 0]))
    assert all(60 <= v <= 140 for v in levels) and len(levels) > 1
    # negative hue shifts work (mmcv's adjust_hue overflows under numpy 2)
    # and a shift there and back is the identity up to HSV rounding
    back = _adjust_hue(_adjust_hue(img, -0.1), 0.1).astype(int)
    assert np.abs(back - img).mean() < 3
    blurred = GaussianBlur(kernel_size=23)(dict(img=img.copy()))['img']
    assert blurred.shape == img.shape and blurred.std() < img.std()


def test_blur_of_an_impulse_is_the_gaussian_kernel():
    """sigma fixed to 1: a single 255 pixel spreads into 255 * g g^T,
    g(x) = exp(-x^2 / 2) / sum over the 23 taps, x = -11..11 (worked out
    here, rounded; cv2's fixed-point uint8 blur is within 1 of it)."""
    img = np.zeros((31, 31, 3), np.uint8)
    img[15, 15] = 255
    out = GaussianBlur(kernel_size=23, sigma=(1.0, 1.0))(dict(img=img))['img']
    x = np.arange(-11, 12)
    g = np.exp(-x**2 / 2) / np.exp(-x**2 / 2).sum()
    expected = np.zeros((31, 31))
    expected[4:27, 4:27] = np.round(255 * np.outer(g, g))
    assert expected[15, 15] == 41 and expected[15, 16] == 25  # by hand
    for c in range(3):
        assert np.abs(out[..., c].astype(int) - expected).max() <= 1


@pytest.mark.parametrize('cls,kwargs,name', [
    (RandomResizedCrop, dict(crop_scale=(0.5, 0.1)), 'crop_scale'),
    (RandomResizedCrop, dict(scale=0), 'scale'),
    (ColorJitter, dict(hue=0.7), 'hue'),
    (ColorJitter, dict(brightness=-1), 'brightness'),
    (ColorJitter, dict(prob=1.5), 'prob'),
    (GaussianBlur, dict(kernel_size=22), 'kernel_size'),
    (GaussianBlur, dict(sigma=(0, 1)), 'sigma'),
    (MultiView, dict(transforms=[], num_views=0), 'num_views'),
])
def test_bad_arguments(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_registered():
    from mmdet_alwa.datasets.transforms import simclr
    for name in ('RandomResizedCrop', 'ColorJitter', 'GaussianBlur',
                 'MultiView', 'PackMultiViewInputs'):
        assert TRANSFORMS.get(name) is getattr(simclr, name)
