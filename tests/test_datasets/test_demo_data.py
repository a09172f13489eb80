"""The built-in demo data generator: deterministic, valid COCO annotations."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmdet_alwa.datasets import demo_data
from mmdet_alwa.datasets.demo_data import (DEMO_CLASSES, ensure_demo_dataset,
                                           generate_demo_dataset)

TINY = dict(num_train=6, num_val=3, img_size=(96, 64), max_objects=5,
            max_iou=0.3)


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def _load(root, split):
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo') / 'a')
    generate_demo_dataset(root, seed=0, **TINY)
    return root


def test_deterministic(tiny_root, tmp_path):
    again, other = str(tmp_path / 'b'), str(tmp_path / 'c')
    generate_demo_dataset(again, seed=0, **TINY)
    generate_demo_dataset(other, seed=1, **TINY)
    files = _files(tiny_root)
    assert files == _files(again)
    _, mismatch, errors = filecmp.cmpfiles(tiny_root, again, files,
                                           shallow=False)
    assert not mismatch and not errors
    # another seed: other pixels and other boxes
    _, mismatch, _ = filecmp.cmpfiles(tiny_root, other, files, shallow=False)
    assert 'train/000000.png' in mismatch
    assert osp.join('annotations', 'train.json') in mismatch


@pytest.mark.parametrize('split,count', [('train', 6), ('val', 3)])
def test_annotations_valid(tiny_root, split, count):
    coco = _load(tiny_root, split)
    assert [c['name'] for c in coco['categories']] == list(DEMO_CLASSES)
    cat_ids = {c['id'] for c in coco['categories']}
    images = {im['id']: im for im in coco['images']}
    assert len(images) == count
    per_image = {i: 0 for i in images}
    for ann in coco['annotations']:
        im = images[ann['image_id']]
        assert (im['width'], im['height']) == TINY['img_size']
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0
        assert x + w <= im['width'] and y + h <= im['height']
        assert ann['category_id'] in cat_ids
        assert ann['area'] > 0 and ann['iscrowd'] == 0
        per_image[ann['image_id']] += 1
    assert min(per_image.values()) >= 2
    assert max(per_image.values()) <= TINY['max_objects']
    assert len({a['id'] for a in coco['annotations']}) == \
        len(coco['annotations'])
    for im in images.values():
        path = osp.join(tiny_root, split, im['file_name'])
        assert osp.isfile(path)


def test_splits_disjoint(tiny_root):
    import cv2
    train = [cv2.imread(osp.join(tiny_root, 'train', im['file_name']))
             for im in _load(tiny_root, 'train')['images']]
    for im in _load(tiny_root, 'val')['images']:
        val = cv2.imread(osp.join(tiny_root, 'val', im['file_name']))
        assert val.shape == (64, 96, 3)
        assert not any(np.array_equal(val, t) for t in train)


def test_varied_classes_and_shapes(tmp_path):
    root = str(tmp_path / 'd')
    generate_demo_dataset(root, num_train=20, num_val=1, img_size=(96, 64),
                          max_objects=5, max_iou=0.3, seed=3)
    anns = _load(root, 'train')['annotations']
    assert {a['category_id'] for a in anns} == set(
        range(1, len(DEMO_CLASSES) + 1))
    ratios = [a['bbox'][2] / a['bbox'][3] for a in anns]
    assert min(ratios) < 0.5 and max(ratios) > 2  # bars, both orientations
    assert any(1.2 < r < 1.6 or 0.6 < r < 0.85 for r in ratios)  # in between
    sides = [min(a['bbox'][2:]) for a in anns]
    assert max(sides) >= 2 * min(sides)
    # some objects overlap, but none hides another (see _MIN_VISIBLE)
    by_image = {}
    for a in anns:
        by_image.setdefault(a['image_id'], []).append(a['bbox'])
    overlaps = [demo_data._iou(_xyxy(a), _xyxy(b))
                for boxes in by_image.values()
                for i, a in enumerate(boxes) for b in boxes[:i]]
    assert any(o > 0 for o in overlaps)
    assert max(overlaps) <= 0.3


def _xyxy(b):
    return (b[0], b[1], b[0] + b[2], b[1] + b[3])


def test_ensure_regenerates_only_on_change(tmp_path, monkeypatch):
    root = str(tmp_path / 'e')
    calls = []
    real = demo_data.generate_demo_dataset

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(demo_data, 'generate_demo_dataset', counting)
    small = dict(TINY, num_train=2, num_val=1)
    paths = ensure_demo_dataset(root, **small)
    assert len(calls) == 1 and all(osp.isfile(p) for p in paths.values())
    assert ensure_demo_dataset(root, **small) == paths
    assert len(calls) == 1  # same parameters: the data is reused
    ensure_demo_dataset(root, **dict(small, seed=5))
    assert len(calls) == 2  # changed parameters: regenerated
    assert len(_load(root, 'train')['images']) == 2
    ensure_demo_dataset(root, **dict(small, num_train=3, seed=5))
    assert len(calls) == 3
    assert len(_load(root, 'train')['images']) == 3


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_train'):
        generate_demo_dataset(str(tmp_path), num_train=0)
    with pytest.raises(ValueError, match='img_size'):
        generate_demo_dataset(str(tmp_path), img_size=(16, 64))
    with pytest.raises(ValueError, match='max_objects'):
        generate_demo_dataset(str(tmp_path), max_objects=1)
