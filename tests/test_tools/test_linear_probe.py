import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, TINY_WIDTH, tiny_cfg
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from sklearn.metrics import average_precision_score

from mmdet_alwa.models.selfsup.linear_probe import multilabel_map


def paper_ap(scores, labels):
    """Paper 001 Eq. (2.4.1): AP_k = sum_n P_{k,n} (R_{k,n} - R_{k,n-1}) over
    images sorted by decreasing score (ties: one step per distinct score)."""
    order = np.argsort(-scores, kind='stable')
    s, y = scores[order], labels[order]
    ap, prev_r = 0.0, 0.0
    for n in range(len(s)):
        if n + 1 < len(s) and s[n + 1] == s[n]:
            continue
        tp = y[:n + 1].sum()
        p, r = tp / (n + 1), tp / y.sum()
        ap += p * (r - prev_r)
        prev_r = r
    return ap


def test_map_equals_sklearn_and_paper():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 5)) < 0.3).astype(np.float32)
    targets[0, :] = 1
    scores = rng.normal(size=(40, 5)) + 2 * targets
    mean_ap, ap = multilabel_map(scores, targets)
    expected = average_precision_score(targets, scores, average=None)
    np.testing.assert_allclose(ap, expected)
    assert mean_ap == pytest.approx(
        average_precision_score(targets, scores, average='macro'))
    for k in range(5):
        assert ap[k] == pytest.approx(paper_ap(scores[:, k], targets[:, k]))


def test_classes_without_positives_are_left_out():
    rng = np.random.default_rng(1)
    targets = (rng.random((30, 4)) < 0.4).astype(np.float32)
    targets[:, 2] = 0
    targets[0, [0, 1, 3]] = 1
    scores = rng.normal(size=(30, 4))
    mean_ap, ap = multilabel_map(scores, targets)
    assert np.isnan(ap[2])
    keep = [0, 1, 3]
    assert mean_ap == pytest.approx(np.mean(
        [average_precision_score(targets[:, k], scores[:, k]) for k in keep]))
    assert np.isnan(multilabel_map(scores, np.zeros_like(targets))[0])
    with pytest.raises(ValueError, match='scores and targets'):
        multilabel_map(scores[:, :2], targets)


def _tool():
    spec = importlib.util.spec_from_file_location(
        'linear_probe_tool',
        osp.join(REPO_ROOT, 'tools/analysis_tools/linear_probe.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_tool_compares_encoders(tiny_data, tmp_path, capsys):
    cfg = tiny_cfg('configs/_base_/faster_rcnn_r50_voc.py', str(tmp_path),
                   tiny_data)
    cfg_path = str(tmp_path / 'probe_cfg.py')
    cfg.dump(cfg_path)
    # a SimCLR checkpoint of the tiny encoder (keys backbone.*)
    init_default_scope('mmdet')
    simclr = MODELS.build(dict(
        type='SimCLR', projector_hidden=16, projector_out=8,
        backbone=dict(type='ResNet', depth=18, base_channels=TINY_WIDTH,
                      out_indices=(3, ))))
    ckpt = str(tmp_path / 'simclr.pth')
    torch.save(dict(state_dict=simclr.state_dict()), ckpt)

    results = _tool().main([
        cfg_path, '--encoder', 'random', '--encoder', f'simclr={ckpt}',
        '--depth', '18', '--base-channels', str(TINY_WIDTH), '--img-size',
        '32', '--epochs', '2', '--num-workers', '0', '--out',
        str(tmp_path / 'probe.json')])
    out = capsys.readouterr().out
    assert 'random' in out and 'simclr' in out and 'mAP' in out
    assert [r['name'] for r in results] == ['random', 'simclr']
    for r in results:
        assert r['scores'].shape == r['targets'].shape == (4, 5)
        valid = r['targets'].any(0)
        assert r['map'] == pytest.approx(np.mean([
            average_precision_score(r['targets'][:, k], r['scores'][:, k])
            for k in np.flatnonzero(valid)]))
    assert osp.isfile(tmp_path / 'probe.json')


def test_tool_bad_arguments(tmp_path):
    tool = _tool()
    with pytest.raises(ValueError, match='NAME=CHECKPOINT'):
        tool.parse_encoders(['simclr'])
    with pytest.raises(ValueError, match='unique'):
        tool.parse_encoders(['random', 'random'])
    from mmdet_alwa.models.selfsup.linear_probe import build_encoder
    init_default_scope('mmdet')
    ckpt = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'neck.w': torch.zeros(1)}), ckpt)
    with pytest.raises(ValueError, match='does not fit'):
        build_encoder(18, ckpt, base_channels=8)
