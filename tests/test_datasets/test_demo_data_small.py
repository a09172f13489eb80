"""The demo generator's small-object variant, and that the default data did
not change when it was added."""
import hashlib
import json
import os
import os.path as osp

import pytest

from mmdet_alwa.datasets.demo_data import (DEMO_CLASSES, ensure_demo_dataset,
                                           generate_demo_dataset)

# sha256 over (relative path, bytes) of every file written by
# generate_demo_dataset(root, num_train=6, num_val=3), computed with the
# generator as it was before the small-object variant was added
DEFAULT_HASH = \
    '2ba3e843ffae9a524e89fa3a8ee022edb4954c78a39115e16f2fe92882e66336'
# the parameters the stamp of the default data recorded before the variant
OLD_STAMP_KEYS = {'num_train', 'num_val', 'img_size', 'max_objects',
                  'max_iou', 'seed', 'version'}

SMALL = dict(num_train=16, num_val=4, img_size=(320, 240), max_objects=8,
             small_class='disc', small_size=(4, 20), large_size=(60, 150))


def _tree_hash(root):
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            path = osp.join(d, f)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_default_output_unchanged(tmp_path):
    root = str(tmp_path / 'd')
    generate_demo_dataset(root, num_train=6, num_val=3)
    assert _tree_hash(root) == DEFAULT_HASH
    ensure_demo_dataset(str(tmp_path / 'e'), num_train=2, num_val=1)
    with open(tmp_path / 'e' / '.generated.json') as f:
        assert set(json.load(f)) == OLD_STAMP_KEYS


@pytest.fixture(scope='module')
def small_boxes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('small'))
    generate_demo_dataset(root, **SMALL)
    boxes = []
    for split in ('train', 'val'):
        with open(osp.join(root, 'annotations', f'{split}.json')) as f:
            coco = json.load(f)
        assert [c['name'] for c in coco['categories']] == list(DEMO_CLASSES)
        boxes += [(DEMO_CLASSES[a['category_id'] - 1], a['bbox'][2],
                   a['bbox'][3]) for a in coco['annotations']]
    return boxes


def test_small_class_sizes(small_boxes):
    small = [(w, h) for name, w, h in small_boxes if name == 'disc']
    large = [(w, h) for name, w, h in small_boxes if name != 'disc']
    assert len(small) >= 10 and len(large) >= 30
    # the longer side is drawn in the given range, both ends included
    assert all(4 <= max(w, h) <= 20 for w, h in small)
    assert all(60 <= max(w, h) <= 150 for w, h in large)
    # discs: shorter side = round(longer * u), u in [1/1.5, 1], at least 2
    assert all(max(2, round(max(w, h) / 1.5)) <= min(w, h) for w, h in small)
    # bars: shorter side = round(longer / u), u in [2.2, 3.2]: >= 60/3.2 = 19
    assert all(min(w, h) >= 18 for w, h in large)
    # uniform over 4..20 and 60..150: both halves of each range occur
    assert min(max(s) for s in small) <= 12 < max(max(s) for s in small)
    assert min(max(s) for s in large) <= 105 < max(max(s) for s in large)


def test_small_variant_validation(tmp_path):
    out = str(tmp_path / 'x')
    with pytest.raises(ValueError, match='small_class must be one of'):
        generate_demo_dataset(out, small_class='blob')
    with pytest.raises(ValueError, match=r'large_size\[1\] = 150 must be '
                       'below the image'):
        generate_demo_dataset(out, img_size=(160, 120), small_class='disc')
    with pytest.raises(ValueError, match=r'small_size\[1\] must be an '
                       'integer >= 8'):
        generate_demo_dataset(out, img_size=(320, 240), small_class='disc',
                              small_size=(8, 4))
    with pytest.raises(ValueError, match=r'small_size\[0\] must be an '
                       'integer >= 2'):
        generate_demo_dataset(out, img_size=(320, 240), small_class='disc',
                              small_size=(1, 4))


def test_small_variant_stamp(tmp_path):
    root = str(tmp_path / 's')
    args = dict(num_train=2, num_val=1, img_size=(320, 240),
                small_class='square')
    ensure_demo_dataset(root, **args)
    with open(osp.join(root, '.generated.json')) as f:
        stamp = json.load(f)
    assert stamp['small_class'] == 'square'
    assert stamp['small_size'] == [4, 20] and stamp['large_size'] == [60, 150]
