"""A small deterministic multi-class detection dataset, generated locally.

Shapes of five classes with varied size and aspect ratio (discs and ellipses,
squares, flat to tall triangles, elongated bars, rings) are drawn with random colours on noisy,
textured backgrounds, several per image, some overlapping. Annotations are
written in COCO format, which mmdet's ``CocoDataset`` reads::

    <out_dir>/
      train/000000.png ...      val/000000.png ...
      annotations/train.json    annotations/val.json

The same arguments always give byte-identical files (numpy ``default_rng``
seeded per image, PNG is lossless).

Small-object variant (``small_class='disc'``): one class is drawn small (the
longer side of its box in ``small_size``, e.g. 4-20 px) and all the others
large (longer side in ``large_size``, e.g. 60-150 px), so that a detector must
find a few-pixel class among large ones (``configs/demo/
faster_rcnn_r18_small_demo.py``; docs/alwa.md, "Small objects"). Without
``small_class`` the generator is unchanged.
"""
import inspect
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmdet_alwa.weighting.validation import check_int

DEMO_CLASSES = ('disc', 'square', 'triangle', 'bar', 'ring')
_VERSION = 3  # bump when the generated content changes
_MIN_VISIBLE = 0.6  # fraction of an object's pixels left visible


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(40, 215, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
    img = base[None, None, :] + 40 * ramp[..., None] * rng.uniform(-1, 1, 3)
    # stripes and blotches make a texture the detector must learn to ignore
    freq = rng.uniform(0.05, 0.3)
    img += 12 * np.sin(freq * (xx * np.cos(angle + 1) + yy))[..., None]
    img += rng.normal(0, 14, size=(h, w, 3))
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        cv2.line(img, (int(cx), int(cy)),
                 (int(rng.integers(0, w)), int(rng.integers(0, h))),
                 tuple(float(c) for c in rng.uniform(0, 255, 3)), 1)
    return img


def _shape_size(rng: np.random.Generator, label: int,
                img_hw: Tuple[int, int]) -> Tuple[int, int]:
    short = min(img_hw)
    side = int(rng.uniform(0.12, 0.4) * short)
    name = DEMO_CLASSES[label]
    if name == 'bar':  # elongated (1:4 to 1:6), either orientation
        long_side = int(side * rng.uniform(2.2, 3.2))
        return (long_side, max(side // 2, 5)) if rng.random() < 0.5 \
            else (max(side // 2, 5), long_side)
    if name in ('triangle', 'disc'):  # flat to tall (ellipses for discs)
        return max(int(side * rng.uniform(0.7, 1.5)), 5), side
    return side, side


def _ranged_shape_size(rng: np.random.Generator, label: int,
                       size_range: Tuple[int, int]) -> Tuple[int, int]:
    """``(w, h)`` of a shape of the small-object variant: the longer side is
    uniform in ``size_range`` (inclusive), the shorter one follows the class's
    aspect ratio (never above the longer one, at least 2 px)."""
    lo, hi = size_range
    long_side = int(rng.integers(lo, hi + 1))
    name = DEMO_CLASSES[label]
    if name == 'bar':  # 1:2.2 to 1:3.2 as in the default sizes
        ratio = 1 / rng.uniform(2.2, 3.2)
    elif name in ('triangle', 'disc'):
        ratio = rng.uniform(1 / 1.5, 1.0)
    else:
        ratio = 1.0
    short_side = max(2, int(round(long_side * ratio)))
    return (long_side, short_side) if rng.random() < 0.5 \
        else (short_side, long_side)


def _shape_mask(label: int, box: Tuple[int, int, int, int],
                img_hw: Tuple[int, int]) -> np.ndarray:
    """The pixels of one shape filling ``box``: a boolean ``(h, w)`` mask."""
    mask = np.zeros(img_hw, np.uint8)
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2
    w, h = x2 - x1, y2 - y1
    name = DEMO_CLASSES[label]
    if name == 'disc':
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))),
                    (w // 2, h // 2), 0, 0, 360, 1, -1)
    elif name == 'ring':
        thickness = max(2, w // 6)
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))),
                    (w // 2 - thickness // 2, h // 2 - thickness // 2), 0, 0,
                    360, 1, thickness)
    elif name in ('square', 'bar'):
        cv2.rectangle(mask, (x1, y1), (x2 - 1, y2 - 1), 1, -1)
    elif name == 'triangle':
        pts = np.array([[x1 + w // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]],
                       dtype=np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def _paint(img: np.ndarray, rng: np.random.Generator,
           mask: np.ndarray) -> None:
    bg = img[mask].mean(0)
    # a colour far from the local background keeps every object visible
    color = rng.uniform(0, 255, 3)
    while np.abs(color - bg).sum() < 150:
        color = rng.uniform(0, 255, 3)
    img[mask] = color


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / max(union - inter, 1)


def _make_image(seed: int, img_hw: Tuple[int, int], max_objects: int,
                max_iou: float, sizes: Optional[Dict] = None
                ) -> Tuple[np.ndarray, List[Dict]]:
    """One image and its objects; ``sizes``: ``None`` (the default sizes) or
    ``dict(small_label=..., small_size=(lo, hi), large_size=(lo, hi))``."""
    rng = np.random.default_rng(seed)
    h, w = img_hw
    img = _background(rng, h, w)
    objects: List[Dict] = []
    # owner[y, x]: index of the object seen at that pixel (-1: background)
    owner = np.full(img_hw, -1, np.int64)
    target = int(rng.integers(2, max_objects + 1))
    for _ in range(50 * target):
        if len(objects) == target:
            break
        label = int(rng.integers(len(DEMO_CLASSES)))
        if sizes is None:
            bw, bh = _shape_size(rng, label, img_hw)
        else:
            bw, bh = _ranged_shape_size(
                rng, label, sizes['small_size'] if label ==
                sizes['small_label'] else sizes['large_size'])
        if bw >= w or bh >= h:
            continue
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = (x1, y1, x1 + bw, y1 + bh)
        if any(_iou(box, o['box']) > max_iou for o in objects):
            continue
        mask = _shape_mask(label, box, img_hw)
        if sizes is not None and not mask.any():
            continue  # a shape too thin to draw (e.g. a 2-px ring)
        # a later shape drawn on top must leave most of every earlier one
        # visible, so that no annotated object is hidden
        n = len(objects)
        visible = np.bincount(owner[owner >= 0], minlength=n) - \
            np.bincount(owner[mask & (owner >= 0)], minlength=n)
        if any(v < _MIN_VISIBLE * o['area'] for v, o in zip(visible, objects)):
            continue
        _paint(img, rng, mask)
        owner[mask] = len(objects)
        objects.append(dict(label=label, box=box, area=int(mask.sum())))
    # sensor noise over objects and background alike
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def generate_demo_dataset(out_dir: str,
                          num_train: int = 320,
                          num_val: int = 60,
                          img_size: Tuple[int, int] = (160, 120),
                          max_objects: int = 5,
                          max_iou: float = 0.3,
                          seed: int = 0,
                          small_class: Optional[str] = None,
                          small_size: Tuple[int, int] = (4, 20),
                          large_size: Tuple[int, int] = (60, 150)
                          ) -> Dict[str, str]:
    """Write the demo dataset and return the paths of its annotation files.

    Args:
        out_dir: folder to write (created).
        num_train, num_val: number of images per split (>= 1).
        img_size: ``(width, height)`` of every image, at least 32 px.
        max_objects: at most this many objects per image (>= 2).
        max_iou: largest IoU allowed between two objects of an image (later
            objects are drawn over earlier ones, so this sets the occlusion).
        seed: the dataset seed; splits use disjoint per-image seeds.
        small_class: ``None`` (default: every class drawn at 12-40 % of the
            image's shorter side, bars longer) or a name of
            :data:`DEMO_CLASSES`: the small-object variant, where the longer
            side of every box of that class is uniform in ``small_size`` and
            that of every other class in ``large_size`` (integers, both ends
            included, in pixels of the generated image). A ``'ring'`` needs a
            longer side of at least 4 px to be drawn.
        small_size, large_size: ``(lo, hi)``, 2 <= lo <= hi, and ``hi`` below
            the image's shorter side; used only with ``small_class``.

    Returns:
        ``{'train': json_path, 'val': json_path}``.
    """
    check_int('num_train', num_train)
    check_int('num_val', num_val)
    width, height = img_size
    if min(width, height) < 32:
        raise ValueError(f'img_size must be at least 32x32, got {img_size}')
    check_int('max_objects', max_objects, minimum=2)
    sizes = None
    if small_class is not None:
        if small_class not in DEMO_CLASSES:
            raise ValueError(f'generate_demo_dataset: small_class must be one '
                             f'of {DEMO_CLASSES} or None, got {small_class!r}')
        for arg, rng_ in (('small_size', small_size),
                          ('large_size', large_size)):
            if len(rng_) != 2:
                raise ValueError(f'generate_demo_dataset: {arg} must be '
                                 f'(lo, hi), got {rng_!r}')
            lo = check_int(f'{arg}[0]', rng_[0], minimum=2)
            hi = check_int(f'{arg}[1]', rng_[1], minimum=lo)
            if hi >= min(width, height):
                raise ValueError(
                    f'generate_demo_dataset: {arg}[1] = {hi} must be below '
                    f'the image\'s shorter side {min(width, height)}')
        sizes = dict(small_label=DEMO_CLASSES.index(small_class),
                     small_size=tuple(small_size),
                     large_size=tuple(large_size))
    paths = {}
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    for split, count, offset in (('train', num_train, 0),
                                 ('val', num_val, 1_000_000)):
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        images, annotations = [], []
        for idx in range(count):
            img, objects = _make_image(seed * 10_000_019 + offset + idx,
                                       (height, width), max_objects, max_iou,
                                       sizes)
            file_name = f'{idx:06d}.png'
            cv2.imwrite(osp.join(out_dir, split, file_name), img)
            images.append(dict(id=idx, file_name=file_name, width=width,
                               height=height))
            for obj in objects:
                x1, y1, x2, y2 = obj['box']
                annotations.append(dict(
                    id=len(annotations), image_id=idx,
                    category_id=obj['label'] + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1), iscrowd=0))
        coco = dict(
            info=dict(description='mmdet_alwa demo data', version=_VERSION),
            images=images, annotations=annotations,
            categories=[dict(id=i + 1, name=n)
                        for i, n in enumerate(DEMO_CLASSES)])
        paths[split] = osp.join(out_dir, 'annotations', f'{split}.json')
        with open(paths[split], 'w') as f:
            json.dump(coco, f)
    return paths


_GENERATE_SIGNATURE = inspect.signature(generate_demo_dataset)


def ensure_demo_dataset(out_dir: str = 'data/demo',
                        **kwargs) -> Dict[str, str]:
    """Generate the demo dataset unless an identical one is already there.

    ``kwargs`` are those of :func:`generate_demo_dataset`. A stamp file written
    after a complete generation records the parameters (defaults included), so
    a changed parameter, a new generator version or an interrupted generation
    all regenerate, and nothing else does.
    """
    params = _GENERATE_SIGNATURE.bind(out_dir, **kwargs)
    params.apply_defaults()
    wanted = dict(params.arguments, version=_VERSION)
    del wanted['out_dir']
    if wanted['small_class'] is None:  # the default data keeps its old stamp
        for key in ('small_class', 'small_size', 'large_size'):
            del wanted[key]
    wanted = json.loads(json.dumps(wanted))  # tuples -> lists, as stored
    stamp = osp.join(out_dir, '.generated.json')
    paths = {s: osp.join(out_dir, 'annotations', f'{s}.json')
             for s in ('train', 'val')}
    if osp.isfile(stamp) and all(osp.isfile(p) for p in paths.values()):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return paths
    if osp.isfile(stamp):
        os.remove(stamp)
    paths = generate_demo_dataset(out_dir, **kwargs)
    with open(stamp, 'w') as f:
        json.dump(wanted, f)
    return paths
