"""tools/analysis_tools/cluster_boxes.py on generated data."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from _helpers import load_tool, make_tiny_voc, voc_xml
from mmdet_alwa.datasets.demo_data import DEMO_CLASSES
from mmdet_alwa.models.utils.box_shape import load_box_clusters

cluster_tool = load_tool('tools/analysis_tools/cluster_boxes.py')


def _blobs(rng, n):
    """Three well separated shape groups: small squares, wide bars, big."""
    sizes = np.concatenate([
        rng.uniform(8, 12, (n, 1)).repeat(2, 1),
        np.c_[rng.uniform(60, 70, n), rng.uniform(8, 10, n)],
        rng.uniform(150, 160, (n, 2))])
    xy = rng.uniform(0, 50, (3 * n, 2))
    return np.c_[xy, xy + sizes]


def test_elbow_and_fixed_k():
    rng = np.random.default_rng(0)
    boxes = np.r_[_blobs(rng, 30), [[5, 5, 5, 9], [0, 0, 4, -1]]]
    res = cluster_tool.cluster_boxes(boxes, k_range=(1, 6))
    assert res['k'] == 3 and res['k_selection'] == 'elbow'
    assert res['num_boxes'] == 90 and res['num_degenerate'] == 2
    assert [c['count'] for c in res['clusters']] == [30, 30, 30]
    # numbered by increasing area; the bars are the elongated cluster
    areas = [c['mean_norm_area'] for c in res['clusters']]
    assert areas == sorted(areas)
    assert res['clusters'][1]['mean_norm_squareness'] > 0.8
    assert res['clusters'][0]['mean_norm_squareness'] < 0.1
    assert np.allclose(res['feature_min'][:2], [8, 8], atol=0.5)
    fixed = cluster_tool.cluster_boxes(boxes, k=2, k_range=(2, 4))
    assert fixed['k'] == 2 and fixed['k_selection'] == 'fixed'
    assert len(fixed['centroids']) == 2 and set(fixed['inertia']) == {
        '2', '3', '4'}


def test_elbow_k_picks_the_knee():
    assert cluster_tool.elbow_k([1, 2, 3, 4, 5], [100, 30, 12, 10, 9]) == 2
    with pytest.raises(ValueError, match='>= 3'):
        cluster_tool.elbow_k([2, 3], [5, 1])


def test_too_few_boxes_is_an_error():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 5, 20], [0, 0, 0, 5.]])
    with pytest.raises(ValueError, match='only 2 usable boxes.*1 degenerate'):
        cluster_tool.cluster_boxes(boxes, k=3)


def test_cli_on_a_coco_config(tiny_data, tmp_path):
    cfg = tmp_path / 'data_cfg.py'
    dataset = dict(type='CocoDataset', data_root=tiny_data,
                   ann_file='annotations/train.json',
                   data_prefix=dict(img='train/'),
                   metainfo=dict(classes=DEMO_CLASSES), pipeline=[])
    # wrappers are unwrapped: the repeat does not count the boxes twice
    cfg.write_text('train_dataloader = ' + repr(dict(
        dataset=dict(type='RepeatDataset', times=2, dataset=dataset))))
    out = tmp_path / 'labels' / 'boxes.json'
    cluster_tool.main([str(cfg), '--out', str(out), '--k-range', '2', '5'])
    res = json.loads(out.read_text())
    with open(osp.join(tiny_data, 'annotations/train.json')) as f:
        num_anns = len(json.load(f)['annotations'])
    assert res['num_boxes'] + res['num_degenerate'] == num_anns
    assert res['num_images'] == 8 and res['split'] == 'train'
    assert sum(c['count'] for c in res['clusters']) == res['num_boxes']
    assert 2 <= res['k'] <= 5 and len(res['centroids']) == res['k']
    assert osp.getsize(tmp_path / 'labels' / 'boxes_elbow.png') > 1000
    assert load_box_clusters(str(out))['centroids'].shape == (res['k'], 4)
    cluster_tool.main([str(cfg), '--out', str(out), '--k', '3',
                       '--plot', str(tmp_path / 'p.png')])
    assert json.loads(out.read_text())['k'] == 3
    assert osp.isfile(tmp_path / 'p.png')


def test_cli_on_a_voc0712_config(tiny_data, tmp_path):
    """VOC0712's Repeat(Concat(07, 12)) wrappers: each box once, difficult
    boxes (ignored by mmdet) and degenerate boxes skipped and counted."""
    root = str(tmp_path / 'VOCdevkit')
    make_tiny_voc(tiny_data, root)
    with open(f'{root}/VOC2007/Annotations/000000.xml', 'w') as f:
        f.write(voc_xml([('disc', [20, 10, 20, 30]),     # zero width
                         ('square', [5, 5, 25, 25]),
                         ('bar', [30, 5, 80, 15])],      # difficult
                        difficult=(2,)))
    voc = dict(type='VOCDataset', data_root=root, pipeline=[],
               metainfo=dict(classes=DEMO_CLASSES))
    cfg = tmp_path / 'voc_cfg.py'
    cfg.write_text('train_dataloader = ' + repr(dict(dataset=dict(
        type='RepeatDataset', times=3, dataset=dict(
            type='ConcatDataset', ignore_keys=['dataset_type'], datasets=[
                dict(voc, ann_file=f'{year}/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root=f'{year}/'))
                for year in ('VOC2007', 'VOC2012')])))))
    out = tmp_path / 'boxes.json'
    cluster_tool.main([str(cfg), '--out', str(out), '--k', '2'])
    res = json.loads(out.read_text())
    xml_boxes = sum(open(osp.join(root, year, 'Annotations', name)).read()
                    .count('<object>')
                    for year in ('VOC2007', 'VOC2012')
                    for name in os.listdir(osp.join(root, year,
                                                    'Annotations')))
    assert res['num_images'] == 8
    assert res['num_degenerate'] == 1
    # every box once: usable + degenerate + ignored (difficult)
    assert res['num_boxes'] + res['num_degenerate'] + 1 == xml_boxes
    assert res['k'] == 2 and sum(c['count'] for c in res['clusters']) == \
        res['num_boxes']
