"""MATL box-shape features, min-max normalisation (Eq. 2), nearest centroid."""
import json

import pytest
import torch

from mmdet_alwa.models.utils.box_shape import (
    FEATURE_NAMES, box_shape_features, feature_ranges, load_box_clusters,
    minmax_normalize, nearest_centroid)


def test_features_by_hand():
    boxes = torch.tensor([[0., 0., 10., 10.], [5., 5., 25., 10.],
                          [0., 0., 4., 16.], [3., 3., 3., 8.]])
    f = box_shape_features(boxes)
    # w, h, w*h, 1 - min(w/h, h/w)
    expect = torch.tensor([[10., 10., 100., 0.], [20., 5., 100., 0.75],
                           [4., 16., 64., 0.75], [0., 5., 0., 1.]])
    assert torch.allclose(f, expect)
    assert box_shape_features(torch.zeros(1, 4)).isfinite().all()
    with pytest.raises(ValueError, match='boxes'):
        box_shape_features(torch.zeros(4))


def test_minmax_normalize_eq2():
    x = torch.tensor([[1., 5., 2.], [3., 5., 4.], [2., 5., 10.]])
    lo, hi = feature_ranges(x)
    assert lo.tolist() == [1, 5, 2] and hi.tolist() == [3, 5, 10]
    y = minmax_normalize(x, lo, hi)
    expect = torch.tensor([[0., 0., 0.], [1., 0., .25], [.5, 0., 1.]])
    assert torch.allclose(y, expect)  # constant column -> 0, not NaN
    # out-of-range values are extrapolated, not clipped
    assert minmax_normalize(torch.tensor([[5., 5., 0.]]), lo, hi)[0, 0] == 2
    with pytest.raises(ValueError):
        feature_ranges(torch.zeros(0, 3))


def test_nearest_centroid():
    c = torch.tensor([[0., 0.], [1., 1.], [0., 1.]])
    p = torch.tensor([[0.1, 0.1], [0.9, 0.8], [0.2, 0.9], [2., 2.]])
    assert nearest_centroid(p, c).tolist() == [0, 1, 2, 1]
    assert nearest_centroid(p[:0], c).numel() == 0
    with pytest.raises(ValueError):
        nearest_centroid(p, torch.zeros(2, 3))


def test_load_box_clusters(tmp_path):
    good = dict(features=list(FEATURE_NAMES), feature_min=[0, 0, 0, 0],
                feature_max=[1, 1, 1, 1], centroids=[[0, 0, 0, 0]] * 3)
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(good))
    out = load_box_clusters(str(path))
    assert out['centroids'].shape == (3, 4)
    path.write_text(json.dumps(dict(good, centroids=[[0, 0]])))
    with pytest.raises(ValueError, match='centroids'):
        load_box_clusters(str(path))
    path.write_text(json.dumps(dict(features=['area'])))
    with pytest.raises(ValueError, match='box-label file'):
        load_box_clusters(str(path))
    with pytest.raises(FileNotFoundError, match='cluster_boxes.py'):
        load_box_clusters(str(tmp_path / 'missing.json'))
