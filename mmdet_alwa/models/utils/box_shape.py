"""Box-shape features and box-shape labels of MATL (Zhou et al., IGARSS 2025).

MATL turns the raw box annotations into discrete *box labels*: per box its
width ``w``, height ``h``, area ``w*h`` and symmetric squareness
``1 - min(w/h, h/w)`` (0 for a square, towards 1 for an elongated box), each
min-max normalised over the training set (paper Eq. 2)::

    x' = (x - min(x)) / (max(x) - min(x))

then clustered with K-means. A box's label is the index of its nearest
centroid in the normalised feature space.

Everything here is pure torch; shapes: boxes ``(N, 4)`` as ``x1, y1, x2, y2``,
features ``(N, 4)`` in :data:`FEATURE_NAMES` order, centroids ``(K, 4)``.
"""
import json
from typing import Dict, Tuple

import torch
from torch import Tensor

__all__ = [
    'FEATURE_NAMES', 'box_shape_features', 'feature_ranges',
    'minmax_normalize', 'nearest_centroid', 'load_box_clusters',
    'assign_box_labels'
]

#: the columns of :func:`box_shape_features`.
FEATURE_NAMES = ('width', 'height', 'area', 'squareness')


def box_shape_features(boxes: Tensor) -> Tensor:
    """Width, height, area and symmetric squareness of ``(N, 4)`` xyxy boxes.

    Degenerate boxes (``w`` or ``h`` <= 0) get squareness 1 rather than NaN;
    callers that must skip them test ``(w > 0) & (h > 0)`` themselves.
    """
    if boxes.dim() != 2 or boxes.size(-1) != 4:
        raise ValueError(
            f'boxes must have shape (N, 4), got {tuple(boxes.shape)}')
    boxes = boxes.float()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    # 1 - min(w/h, h/w) == 1 - min(w, h) / max(w, h)
    ratio = torch.minimum(w, h).clamp(min=0) / torch.maximum(w, h).clamp(
        min=torch.finfo(torch.float32).tiny)
    return torch.stack([w, h, w * h, 1 - ratio], dim=1)


def feature_ranges(features: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-column ``(min, max)`` of ``(N, D)`` features, N >= 1."""
    if features.dim() != 2 or features.size(0) == 0:
        raise ValueError('features must be a non-empty (N, D) tensor, got '
                         f'shape {tuple(features.shape)}')
    return features.min(dim=0).values, features.max(dim=0).values


def minmax_normalize(features: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Paper Eq. 2, column-wise: ``(x - low) / (high - low)``.

    A constant column (``high == low``) maps to 0 instead of dividing by 0.
    Values outside ``[low, high]`` (boxes not seen when fitting the ranges)
    are not clipped, so nearest-centroid assignment still ranks them.
    """
    span = high - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return (features - low) / span


def nearest_centroid(points: Tensor, centroids: Tensor) -> Tensor:
    """Index ``(N,)`` of the nearest of ``(K, D)`` centroids (Euclidean)."""
    if points.dim() != 2 or centroids.dim() != 2 or \
            points.size(1) != centroids.size(1) or centroids.size(0) == 0:
        raise ValueError(
            'points (N, D) and centroids (K>=1, D) must share D, got '
            f'{tuple(points.shape)} and {tuple(centroids.shape)}')
    if points.size(0) == 0:
        return points.new_zeros(0, dtype=torch.long)
    return torch.cdist(points.float(), centroids.float()).argmin(dim=1)


def load_box_clusters(path: str) -> Dict[str, Tensor]:
    """Read the JSON of ``tools/analysis_tools/cluster_boxes.py``.

    Returns ``dict(low=(4,), high=(4,), centroids=(K, 4))`` float tensors.
    """
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'box-label file {path!r} not found; create it with '
            'tools/analysis_tools/cluster_boxes.py CONFIG --out '
            f'{path}') from None
    try:
        if tuple(info['features']) != FEATURE_NAMES:
            raise ValueError(f'features must be {list(FEATURE_NAMES)}, got '
                             f'{info["features"]}')
        out = dict(
            low=torch.tensor(info['feature_min'], dtype=torch.float32),
            high=torch.tensor(info['feature_max'], dtype=torch.float32),
            centroids=torch.tensor(info['centroids'], dtype=torch.float32))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{path!r} is not a box-label file of '
                         f'cluster_boxes.py: {e}') from None
    d = len(FEATURE_NAMES)
    if out['low'].shape != (d, ) or out['high'].shape != (d, ) or \
            out['centroids'].dim() != 2 or out['centroids'].size(1) != d or \
            out['centroids'].size(0) == 0:
        raise ValueError(f'{path!r}: feature_min/feature_max must have {d} '
                         f'values and centroids shape (K, {d})')
    return out


def assign_box_labels(boxes: Tensor, clusters: Dict[str, Tensor]) -> Tensor:
    """Box labels ``(N,)`` of ``(N, 4)`` boxes in the clustering's pixels:
    the nearest centroid of their normalised features (``clusters`` as
    returned by :func:`load_box_clusters`, on the boxes' device)."""
    feats = minmax_normalize(box_shape_features(boxes), clusters['low'],
                             clusters['high'])
    return nearest_centroid(feats, clusters['centroids'])
