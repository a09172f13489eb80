import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from _helpers import TINY_WIDTH, load_tool, tiny_cfg, voc_xml
from mmdet.registry import DATASETS, MODELS
from mmengine.registry import init_default_scope
from sklearn.metrics import average_precision_score

from mmdet_alwa.evaluation.linear_probe import (multilabel_map,
                                                multilabel_targets,
                                                probe_dataset_cfg,
                                                split_holdout,
                                                train_linear_probe)


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


def _small_object_voc(root):
    """Image a: a 20 px dog and a 50 px car; b: no object; c: a difficult
    car. 64 x 64 images, one VOC2007-style folder."""
    objects = dict(a=[('dog', [5, 5, 25, 25]), ('car', [10, 10, 60, 60])],
                   b=[], c=[('car', [2, 2, 40, 40])])
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        os.makedirs(f'{root}/{sub}')
    for img_id, objs in objects.items():
        cv2.imwrite(f'{root}/JPEGImages/{img_id}.jpg',
                    np.full((64, 64, 3), 128, np.uint8))
        with open(f'{root}/Annotations/{img_id}.xml', 'w') as f:
            f.write(voc_xml(objs, size=(64, 64),
                            difficult=(0, ) if img_id == 'c' else ()))
    with open(f'{root}/ImageSets/Main/trainval.txt', 'w') as f:
        f.write('a\nb\nc\n')


def test_train_and_test_targets_follow_one_label_rule(tmp_path):
    """The detector's train split (mmdet's voc0712: filter_empty_gt,
    min_size=32, bbox_min_size=32, inside Repeat/Concat wrappers) and test
    split (test_mode, no filter) give the same image-level targets."""
    root = str(tmp_path / 'VOC2007')
    _small_object_voc(root)
    leaf = dict(type='VOCDataset', data_root=root + '/',
                ann_file='ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=''),
                metainfo=dict(classes=('dog', 'car')), pipeline=[])
    train = dict(type='RepeatDataset', times=3, dataset=dict(
        type='ConcatDataset', datasets=[dict(
            leaf, filter_cfg=dict(filter_empty_gt=True, min_size=32,
                                  bbox_min_size=32))]))
    test = dict(leaf, test_mode=True)
    init_default_scope('mmdet')
    # by hand: a has a dog (20 px) and a car; b nothing; c a (difficult) car
    expected = np.array([[1, 1], [0, 0], [0, 1]], np.float32)
    for cfg in (train, test):
        ds = DATASETS.build(probe_dataset_cfg(cfg, 32))
        np.testing.assert_array_equal(multilabel_targets(ds), expected)


def test_holdout_split():
    fit, val = split_holdout(9, 2 / 9, seed=0)
    assert len(val) == 2 and len(fit) == 7
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(9))
    assert len(split_holdout(3, 0.01)[1]) == 1  # at least one image
    assert len(split_holdout(9, 0)[1]) == 0
    with pytest.raises(ValueError, match='val_fraction'):
        split_holdout(9, 1.0)


def test_probe_selected_by_validation_map():
    """Paper 001 evaluates the best epoch: the returned probe is the one of
    the epoch with the best validation mAP, here epoch 4 of 8 (found by
    retraining for 1..8 epochs and scoring with scikit-learn)."""
    g = torch.Generator().manual_seed(1)
    f = torch.randn(60, 8, generator=g)
    w = torch.randn(8, 3, generator=g)
    y = ((f @ w + 1.5 * torch.randn(60, 3, generator=g)) > 0).float()
    f_fit, y_fit, f_val, y_val = f[:30], y[:30], f[30:], y[30:].numpy()
    kwargs = dict(lr=0.05, batch_size=8, seed=0)
    probe, info = train_linear_probe(f_fit, y_fit, epochs=8,
                                     val=(f_val, y_val), **kwargs)
    maps, probes = [], []
    for e in range(1, 9):
        p, last = train_linear_probe(f_fit, y_fit, epochs=e, **kwargs)
        assert last == dict(epoch=e, val_map=[])
        s = p(f_val).detach().numpy()
        maps.append(np.mean([average_precision_score(y_val[:, k], s[:, k])
                             for k in range(3)]))
        probes.append(p)
    best = int(np.argmax(maps))
    assert best + 1 == info['epoch'] == 4 and maps[best] > maps[-1]
    np.testing.assert_allclose(info['val_map'], maps, rtol=1e-6)
    torch.testing.assert_close(probe.weight, probes[best].weight)
    torch.testing.assert_close(probe.bias, probes[best].bias)


def _tool():
    return load_tool('tools/analysis_tools/linear_probe.py',
                     'linear_probe_tool')


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
        # 2 of the 8 train images select the epoch (round(8 * 2/9) = 2)
        assert (r['num_train'], r['num_val']) == (6, 2)
        assert len(r['val_map']) == 2 and 1 <= r['epoch'] <= 2
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
    from mmdet_alwa.evaluation.linear_probe import build_encoder
    init_default_scope('mmdet')
    ckpt = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'neck.w': torch.zeros(1)}), ckpt)
    with pytest.raises(ValueError, match='does not fit'):
        build_encoder(18, ckpt, base_channels=8)
