"""tools/misc/check_dataset.py on generated VOC (mmdet's VOC0712 wrappers)
and COCO data with planted mistakes: each is reported with its file and
severity, and the exit status says whether training would break. The
agreement of every verdict with mmdet's own build + pipeline is in
test_check_dataset_vs_loader.py."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import pytest

from _helpers import REPO_ROOT, load_tool, make_tiny_voc, voc_xml
from mmdet_alwa.datasets.demo_data import DEMO_CLASSES

tool = load_tool('tools/misc/check_dataset.py')

VOC_CFG = """
data_root = {root!r}
classes = {classes!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(96, 64), keep_ratio=True),
    {filter}
    dict(type='PackDetInputs'),
]
_voc = dict(type='VOCDataset', data_root=data_root,
            metainfo=dict(classes=classes), pipeline=train_pipeline,
            filter_cfg=dict(filter_empty_gt=True, min_size=32))
train_dataloader = dict(dataset=dict(
    type='RepeatDataset', times=3,
    dataset=dict(type='ConcatDataset', ignore_keys=['dataset_type'],
                 datasets=[
        dict(_voc, ann_file='VOC2007/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2007/')),
        dict(_voc, ann_file='VOC2012/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2012/'))])))
"""
FILTER = "dict(type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1)),"


def _findings(out_dir):
    report = json.load(open(osp.join(out_dir, 'report.json')))
    return report, {(f['severity'], f['kind'], osp.basename(f['file']))
                    for f in report['findings']}


@pytest.fixture(scope='module')
def voc_root(tiny_data, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('voc') / 'VOCdevkit')
    make_tiny_voc(tiny_data, root)
    ann = f'{root}/VOC2007/Annotations'
    # planted: zero-width box, box outside the image, unknown class,
    # an image without boxes, a missing image file (in VOC2012)
    with open(f'{ann}/000000.xml', 'w') as f:
        f.write(voc_xml([('disc', [20, 10, 20, 30]), ('square', [5, 5, 25, 25])]))
    with open(f'{ann}/000001.xml', 'w') as f:
        f.write(voc_xml([('bar', [120, 10, 140, 30]), ('ring', [5, 5, 25, 25])]))
    with open(f'{ann}/000002.xml', 'w') as f:
        f.write(voc_xml([('unicorn', [5, 5, 25, 25]), ('disc', [5, 5, 25, 25])]))
    with open(f'{ann}/000003.xml', 'w') as f:
        f.write(voc_xml([]))
    os.remove(f'{root}/VOC2012/JPEGImages/000006.jpg')
    return root


@pytest.mark.parametrize('filtered', [True, False],
                         ids=['filtered', 'unfiltered'])
def test_voc_planted_mistakes(voc_root, tmp_path, filtered, capsys):
    cfg = tmp_path / 'voc.py'
    cfg.write_text(VOC_CFG.format(root=voc_root + '/', classes=DEMO_CLASSES,
                                  filter=FILTER if filtered else ''))
    out = str(tmp_path / 'out')
    assert tool.main([str(cfg), '--out-dir', out, '--no-progress']) == 1
    report, found = _findings(out)
    bad = 'warning' if filtered else 'error'
    assert {(bad, 'degenerate_box', '000000.xml'),
            (bad, 'outside_box', '000001.xml'),
            ('warning', 'unknown_class', '000002.xml'),
            ('warning', 'empty_image', '000003.xml'),
            ('error', 'missing_image', '000006.jpg')} <= found
    assert len({k for k in found if k[0] == 'error'}) == (1 if filtered
                                                          else 3)
    assert report['num_images'] == 8
    # 000003.xml (no boxes) is dropped by filter_empty_gt
    assert report['num_used_images'] == 7
    assert report['unknown_classes'] == {'unicorn': 1}
    assert sum(report['class_counts'].values()) == report['num_boxes']
    assert osp.getsize(osp.join(out, 'box_stats.png')) > 1000
    text = capsys.readouterr().out
    assert 'result: FAILED' in text and '000006.jpg' in text


def test_coco_planted_mistakes_and_exit_status(tiny_data, tmp_path):
    data = str(tmp_path / 'coco')
    shutil.copytree(tiny_data, data)
    ann_file = f'{data}/annotations/train.json'
    coco = json.load(open(ann_file))
    coco['categories'].append(dict(id=99, name='unicorn'))
    anns = [a for a in coco['annotations'] if a['image_id'] != 4]  # empty
    new = [dict(image_id=0, category_id=1, bbox=[10, 10, 0, 8], area=0),
           dict(image_id=1, category_id=2, bbox=[200, 10, 8, 8], area=64),
           dict(image_id=2, category_id=99, bbox=[5, 5, 8, 8], area=64)]
    for a in new:
        anns.append(dict(a, id=len(anns) + 1000, iscrowd=0))
    coco['annotations'] = anns
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    cfg = tmp_path / 'coco.py'
    cfg.write_text(f"""
train_dataloader = dict(dataset=dict(
    type='CocoDataset', data_root={data!r}, ann_file='annotations/train.json',
    data_prefix=dict(img='train/'), metainfo=dict(classes={DEMO_CLASSES!r}),
    pipeline=[dict(type='LoadImageFromFile')]))
""")
    out = str(tmp_path / 'out')
    args = [str(cfg), '--out-dir', out, '--no-progress']
    # the COCO loader drops all three planted boxes: warnings, exit 0; the
    # image without boxes is kept (no filter_cfg): a note
    assert tool.main(args) == 0
    assert tool.main(args + ['--strict']) == 1
    _, found = _findings(out)
    assert found == {('warning', 'degenerate_box', '000000.png'),
                     ('warning', 'outside_box', '000001.png'),
                     ('warning', 'unknown_class', '000002.png'),
                     ('info', 'empty_image', '000004.png')}
    os.remove(f'{data}/train/000003.png')
    run = subprocess.run([sys.executable, 'tools/misc/check_dataset.py'] +
                         args, cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert '[missing_image]' in run.stdout and '000003.png' in run.stdout


def test_voc0712_one_box_per_year(tiny_data, tmp_path):
    """The smallest VOC0712 layout: one image with one box in each year (the
    old size histogram raised 'bins must increase monotonically')."""
    root = str(tmp_path / 'VOCdevkit')
    make_tiny_voc(tiny_data, root)
    for year, img_id in (('VOC2007', '000000'), ('VOC2012', '000005')):
        with open(f'{root}/{year}/ImageSets/Main/trainval.txt', 'w') as f:
            f.write(img_id + '\n')
        with open(f'{root}/{year}/Annotations/{img_id}.xml', 'w') as f:
            f.write(voc_xml([('disc', [20, 10, 40, 30])]))
    cfg = tmp_path / 'voc.py'
    cfg.write_text(VOC_CFG.format(root=root + '/', classes=DEMO_CLASSES,
                                  filter=''))
    out = str(tmp_path / 'out')
    assert tool.main([str(cfg), '--out-dir', out, '--no-progress']) == 0
    report, found = _findings(out)
    assert found == set()
    assert (report['num_images'], report['num_boxes']) == (2, 2)
    # both boxes are 20 x 20 px (VOC: int(v) - 1 on both corners)
    assert report['box_stats']['width']['p50'] == 20
    assert osp.getsize(osp.join(out, 'box_stats.png')) > 1000


def test_log_bins_always_increase():
    import numpy as np
    for v in ([20.0], [20.0, 20.0], [0.5, 300.0], [1e-6]):
        bins = tool.log_bins(np.asarray(v))
        assert (np.diff(bins) > 0).all()
        assert bins[0] <= min(v) or min(v) < 1e-3
        assert bins[-1] >= max(v)


def test_walker_over_wrappers():
    from mmdet_alwa.datasets.check import iter_leaf_datasets
    a, b, c = (dict(type='VOCDataset', ann_file=n) for n in 'abc')
    cfg = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[
            a, dict(type='ClassBalancedDataset', oversample_thr=0.1,
                    dataset=b), c]))
    leaves = list(iter_leaf_datasets(cfg))
    assert [leaf['ann_file'] for leaf, _ in leaves] == ['a', 'b', 'c']
    assert [[p['type'] for p in parents] for _, parents in leaves] == [
        ['RepeatDataset', 'ConcatDataset'],
        ['RepeatDataset', 'ConcatDataset', 'ClassBalancedDataset'],
        ['RepeatDataset', 'ConcatDataset']]
