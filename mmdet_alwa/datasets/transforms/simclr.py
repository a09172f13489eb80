"""SimCLR's two-view augmentation (Briody & Aygen, Sec. 2.3.1) with numpy/cv2.

One view is: random resized crop then resize, horizontal flip (p=0.5), colour
jitter (p=0.8; brightness, contrast, saturation factors in [0.6, 1.4], hue
shift in [-0.1, 0.1], in random order as torchvision's ColorJitter does),
grayscale (p=0.2), Gaussian blur (23x23 kernel, sigma in [0.1, 2.0]);
normalisation with the dataset's mean/std is done by the data preprocessor.
``MultiView`` draws two independent views of each image and
``PackMultiViewInputs`` packs them for :class:`SimCLRDataPreprocessor`.

torchvision does not install beside this project's torch, so the crop, jitter
and blur follow torchvision's definitions with mmcv's photometric helpers.
Randomness comes from ``np.random`` (seeded by mmengine per worker).
"""
import copy
import math
from typing import List, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmdet.registry import TRANSFORMS
from mmengine.structures import BaseDataElement

from mmdet_alwa.weighting.validation import check_int, check_range


def _pair(value, name: str) -> Tuple[float, float]:
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    if not lo <= hi:
        raise ValueError(f'{name} must be (min, max) with min <= max, '
                         f'got {value!r}')
    return float(lo), float(hi)


def _check_prob(prob: float) -> float:
    return check_range('prob', prob, 0, 1)


def _adjust_hue(img: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of a BGR uint8 image by ``shift`` turns (torchvision's
    adjust_hue). mmcv's adjust_hue fails under numpy 2 for negative shifts
    (``np.uint8(-7)`` overflows)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    hue = hsv[..., 0].astype(np.int16) + int(round(shift * 255))
    hsv[..., 0] = np.mod(hue, 256).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crop a random area and aspect ratio, then resize (torchvision's rule).

    Up to 10 tries draw an area fraction in ``crop_scale`` and a log-uniform
    aspect ratio in ``ratio``; if none fits, the central crop with the ratio
    clamped to ``ratio`` is used.

    Args:
        scale (int | tuple[int, int]): output size, ``(w, h)`` or a side.
        crop_scale (tuple[float, float]): area fraction range of the crop.
        ratio (tuple[float, float]): aspect ratio (w / h) range of the crop.
        interpolation (str): cv2 interpolation name for ``mmcv.imresize``.

    Modified keys: ``img`` (H, W, C) -> (scale_h, scale_w, C), ``img_shape``.
    """

    def __init__(self,
                 scale: Union[int, Tuple[int, int]] = 224,
                 crop_scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3),
                 interpolation: str = 'bilinear') -> None:
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
        if len(self.scale) != 2 or min(self.scale) <= 0:
            raise ValueError(f'scale must be a positive int or (w, h), '
                             f'got {scale!r}')
        self.crop_scale = _pair(crop_scale, 'crop_scale')
        if not (0 < self.crop_scale[0] and self.crop_scale[1] <= 1):
            raise ValueError(f'crop_scale must lie in (0, 1], got {crop_scale}')
        self.ratio = _pair(ratio, 'ratio')
        if self.ratio[0] <= 0:
            raise ValueError(f'ratio must be positive, got {ratio!r}')
        self.interpolation = interpolation

    def _crop_box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        area = h * w
        log_ratio = np.log(self.ratio)
        for _ in range(10):
            target = area * np.random.uniform(*self.crop_scale)
            aspect = math.exp(np.random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                y = np.random.randint(0, h - ch + 1)
                x = np.random.randint(0, w - cw + 1)
                return y, x, ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        y, x, ch, cw = self._crop_box(*img.shape[:2])
        img = mmcv.imresize(img[y:y + ch, x:x + cw], self.scale,
                            interpolation=self.interpolation)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """torchvision-style colour jitter on a BGR uint8 image, applied with
    probability ``prob``.

    Brightness, contrast and saturation factors are drawn from
    ``[max(0, 1 - b), 1 + b]`` (so 0.4 gives [0.6, 1.4]); the hue shift from
    ``[-hue, hue]`` (fraction of the hue circle, ``hue`` <= 0.5). The four
    adjustments run in a random order.
    """

    def __init__(self,
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.4,
                 hue: float = 0.1,
                 prob: float = 0.8) -> None:
        for name, v in dict(brightness=brightness, contrast=contrast,
                            saturation=saturation).items():
            check_range(name, v, 0, math.inf, high_inclusive=False)
        check_range('hue', hue, 0, 0.5)
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue
        self.prob = _check_prob(prob)

    @staticmethod
    def _factor(v: float) -> float:
        return np.random.uniform(max(0.0, 1 - v), 1 + v)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        for op in np.random.permutation(4):
            if op == 0:
                img = mmcv.adjust_brightness(img, self._factor(self.brightness))
            elif op == 1:
                img = mmcv.adjust_contrast(img, self._factor(self.contrast))
            elif op == 2:
                img = mmcv.adjust_color(img, self._factor(self.saturation))
            else:
                img = _adjust_hue(img, np.random.uniform(-self.hue, self.hue))
        results['img'] = img
        return results


@TRANSFORMS.register_module()
class GaussianBlur(BaseTransform):
    """Gaussian blur with a fixed square kernel and a random sigma.

    Args:
        kernel_size (int): odd side of the kernel (23 in Briody & Aygen).
        sigma (tuple[float, float]): range of the standard deviation.
        prob (float): probability of blurring (Briody & Aygen blur every view;
            Chen et al. use 0.5 on ImageNet).
    """

    def __init__(self,
                 kernel_size: int = 23,
                 sigma: Tuple[float, float] = (0.1, 2.0),
                 prob: float = 1.0) -> None:
        if check_int('kernel_size', kernel_size) % 2 == 0:
            raise ValueError(
                f'kernel_size must be odd, got {kernel_size!r}')
        self.kernel_size = kernel_size
        self.sigma = _pair(sigma, 'sigma')
        if self.sigma[0] <= 0:
            raise ValueError(f'sigma must be positive, got {sigma!r}')
        self.prob = _check_prob(prob)

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        s = np.random.uniform(*self.sigma)
        k = self.kernel_size
        results['img'] = cv2.GaussianBlur(
            results['img'], (k, k), sigmaX=s, sigmaY=s,
            borderType=cv2.BORDER_REFLECT_101)
        return results


@TRANSFORMS.register_module()
class MultiView(BaseTransform):
    """Apply ``transforms`` ``num_views`` times independently.

    Modified key: ``img`` becomes a list of ``num_views`` images.
    """

    def __init__(self, transforms: Sequence[dict], num_views: int = 2) -> None:
        self.num_views = check_int('num_views', num_views)
        self.pipeline = Compose(
            [TRANSFORMS.build(t) if isinstance(t, dict) else t
             for t in transforms])

    def transform(self, results: dict) -> dict:
        views = [self.pipeline(copy.deepcopy(results))['img']
                 for _ in range(self.num_views)]
        results['img'] = views
        return results


@TRANSFORMS.register_module()
class PackMultiViewInputs(BaseTransform):
    """Pack the views as ``inputs``: a list of (C, H, W) uint8 tensors.

    ``data_samples`` is a :class:`BaseDataElement` whose metainfo holds
    ``meta_keys`` (labels, if any, are not packed: SimCLR ignores them).
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        views: List[np.ndarray] = results['img']
        inputs = []
        for img in views:
            img = img[..., None] if img.ndim == 2 else img
            inputs.append(torch.from_numpy(
                np.ascontiguousarray(img.transpose(2, 0, 1))))
        meta = {k: results[k] for k in self.meta_keys if k in results}
        return dict(inputs=inputs, data_samples=BaseDataElement(metainfo=meta))
