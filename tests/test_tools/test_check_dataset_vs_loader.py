"""The dataset check agrees with mmdet's loader (issue 12, point 4).

Every case plants one thing in a tiny generated VOC (mmdet's VOC0712
``ConcatDataset`` of VOC2007 + VOC2012) or COCO dataset. The expected
verdict is written by hand from mmdet 3.3's loader code; the test then runs
both the check and mmdet's real dataset build + pipeline over every item
(``loader_verdict``) and requires the three to agree:

* ``error``: the build or the first pass over the data raises, the dataset
  is empty, or a zero-size box reaches the train targets;
* ``warning``: the loader or the pipeline dropped an image or a box, or
  ``Resize`` clipped a box (fewer images/boxes come out than were written,
  or a parsed box crosses the image border);
* ``ok``: everything written comes out as it was.
"""
import copy
import gc
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from _helpers import load_tool, voc_xml
from mmdet_alwa.datasets.check import check_dataset

CLASSES = ('dog', 'cat')
W, H = 64, 48
BOX, BOX2 = [10, 10, 30, 30], [5, 5, 40, 30]  # VOC coordinates (1-based)


def _pipeline(split, box_filter, filter_first=False):
    load = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True)]
    resize = [dict(type='Resize', scale=(W, H), keep_ratio=True)]
    pack = [dict(type='PackDetInputs')]
    if split == 'val':  # mmdet's test pipelines load boxes after Resize
        return load[:1] + resize + load[1:] + pack
    flt = [dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1))] \
        if box_filter else []
    if filter_first:
        return load + flt + resize + pack
    return load + resize + flt + pack


def _image(path, size=(W, H)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(path, rng.integers(0, 255, size[::-1] + (3, ),
                                   dtype=np.uint8))


def voc_case(root, years, split='train', box_filter=False, difficult=None,
             no_xml=(), no_image=(), empty_list=(), filter_first=False,
             sizes=None, xml_text=None, garbage_image=()):
    """``years``: {year: {img_id: [(class, VOC box)]}}; ``sizes``:
    {img_id: (w, h)} of image and XML (``None``: an XML without <size>);
    ``xml_text``: {img_id: replacement XML}; returns (config, images
    written, boxes written)."""
    sizes = sizes or {}
    n_img = n_box = 0
    datasets = []
    for year, images in years.items():
        base = osp.join(root, year)
        os.makedirs(f'{base}/ImageSets/Main')
        os.makedirs(f'{base}/Annotations')
        for img_id, objects in images.items():
            size = sizes.get(img_id, (W, H))
            if img_id in garbage_image:
                os.makedirs(f'{base}/JPEGImages', exist_ok=True)
                with open(f'{base}/JPEGImages/{img_id}.jpg', 'wb') as f:
                    f.write(b'not a jpeg')
            elif img_id not in no_image:
                _image(f'{base}/JPEGImages/{img_id}.jpg', size or (W, H))
            text = voc_xml(objects, size=size or (W, H),
                           difficult=(difficult or {}).get(img_id, ()))
            if size is None:
                text = text[:text.index('<size>')] + \
                    text[text.index('</size>') + len('</size>'):]
            text = (xml_text or {}).get(img_id, text)
            if img_id not in no_xml:
                with open(f'{base}/Annotations/{img_id}.xml', 'w') as f:
                    f.write(text)
        listed = [] if year in empty_list else list(images)
        n_img += len(listed)
        n_box += sum(len(images[i]) for i in listed)
        with open(f'{base}/ImageSets/Main/trainval.txt', 'w') as f:
            f.write(''.join(f'{i}\n' for i in listed))
        datasets.append(dict(
            type='VOCDataset', data_root=root,
            ann_file=f'{year}/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root=f'{year}/'),
            metainfo=dict(classes=CLASSES), test_mode=split != 'train',
            filter_cfg=dict(filter_empty_gt=True, min_size=8),
            pipeline=_pipeline(split, box_filter, filter_first)))
    dataset = dict(type='ConcatDataset', datasets=datasets)
    return Config({f'{split}_dataloader': dict(dataset=dataset)}), \
        n_img, n_box


def coco_case(root, anns, split='train', no_image=(), num_images=2,
              categories=(dict(id=1, name='dog'), dict(id=2, name='cat')),
              sizes=None, same_ids=False, broken=False):
    """``anns``: COCO annotations without ``id`` (added; ``same_ids``: all
    1); images 0..num_images-1 of W x H or ``sizes[i]``; ``broken``:
    "annotations" is a dict of them instead of a list."""
    sizes = sizes or {}
    images = [dict(id=i, file_name=f'{i:06d}.png',
                   width=sizes.get(i, (W, H))[0],
                   height=sizes.get(i, (W, H))[1])
              for i in range(num_images)]
    for img in images:
        if img['id'] not in no_image:
            _image(f'{root}/img/{img["file_name"]}',
                   (img['width'], img['height']))
    anns = [dict(a, id=1 if same_ids else k + 1) for k, a in enumerate(anns)]
    os.makedirs(root, exist_ok=True)
    with open(f'{root}/ann.json', 'w') as f:
        if broken:
            anns = {str(a['id']): a for a in anns}
        json.dump(dict(images=images, annotations=anns,
                       categories=list(categories)), f)
    dataset = dict(type='CocoDataset', data_root=root + '/',
                   ann_file='ann.json', data_prefix=dict(img='img/'),
                   metainfo=dict(classes=CLASSES),
                   filter_cfg=dict(filter_empty_gt=True, min_size=8),
                   pipeline=_pipeline(split, False))
    return Config({f'{split}_dataloader': dict(dataset=dataset)}), \
        num_images, len(anns)


def _ann(image_id, bbox, category_id=1, **kw):
    x, y, w, h = bbox
    return dict(dict(image_id=image_id, category_id=category_id, bbox=bbox,
                     area=w * h, iscrowd=0), **kw)


def _no_area(ann):
    ann = dict(ann)
    del ann['area']
    return ann


GOOD = {'VOC2007': {'a': [('dog', BOX)]}, 'VOC2012': {'b': [('cat', BOX2)]}}
GOOD_COCO = [_ann(0, [10, 10, 20, 20]), _ann(1, [5, 5, 30, 20], 2)]
CASES = {
    # name: (builder, kwargs, expected verdict)
    # the VOC0712 layout with one image and one box per year (it crashed the
    # histogram of the old check)
    'voc_one_box_each': ('voc', dict(years=GOOD), 'ok'),
    'voc_empty_2007_list': ('voc', dict(years=GOOD, empty_list=('VOC2007',
                                                                 )), 'error'),
    'voc_2007_all_images_without_objects': (
        'voc', dict(years=dict(GOOD, VOC2007={'a': [], 'c': []})), 'error'),
    'voc_2007_all_images_without_objects_val': (
        'voc', dict(years=dict(GOOD, VOC2007={'a': [], 'c': []}),
                    split='val'), 'ok'),
    'voc_2007_only_unknown_classes': (
        'voc', dict(years=dict(GOOD, VOC2007={'a': [('unicorn', BOX)]})),
        'error'),
    'voc_one_image_without_objects': (
        'voc', dict(years=dict(GOOD, VOC2007={'a': [('dog', BOX)],
                                               'c': []})), 'warning'),
    'voc_unknown_class': ('voc', dict(years=dict(GOOD, VOC2007={'a': [
        ('unicorn', BOX), ('dog', BOX)]})), 'warning'),
    'voc_zero_width_box': ('voc', dict(years=dict(GOOD, VOC2007={'a': [
        ('dog', [20, 10, 20, 30]), ('cat', BOX)]})), 'error'),
    'voc_zero_width_box_filtered': ('voc', dict(years=dict(GOOD, VOC2007={
        'a': [('dog', [20, 10, 20, 30]), ('cat', BOX)]}), box_filter=True),
        'warning'),
    'voc_zero_width_box_difficult': ('voc', dict(years=dict(GOOD, VOC2007={
        'a': [('dog', [20, 10, 20, 30]), ('cat', BOX)]}),
        difficult={'a': (0, )}), 'ok'),
    'voc_difficult_box': ('voc', dict(years=GOOD, difficult={'a': (0, )}),
                          'ok'),
    'voc_box_outside': ('voc', dict(years=dict(GOOD, VOC2007={'a': [
        ('dog', [100, 10, 120, 30]), ('cat', BOX)]})), 'error'),
    'voc_box_outside_filtered': ('voc', dict(years=dict(GOOD, VOC2007={
        'a': [('dog', [100, 10, 120, 30]), ('cat', BOX)]}), box_filter=True),
        'warning'),
    'voc_box_partly_outside': ('voc', dict(years=dict(GOOD, VOC2007={'a': [
        ('dog', [50, 10, 80, 30])]})), 'warning'),
    'voc_missing_image': ('voc', dict(years=GOOD, no_image=('b', )),
                          'error'),
    'voc_missing_xml': ('voc', dict(years=GOOD, no_xml=('a', )), 'error'),
    'voc_unparsable_xml': ('voc', dict(years=GOOD, xml_text={
        'a': '<annotation><object>'}), 'error'),
    'voc_box_not_a_number': ('voc', dict(years=GOOD, xml_text={
        'a': voc_xml([('dog', BOX)], size=(W, H)).replace(
            '<xmin>10<', '<xmin>ten<')}), 'error'),
    'voc_infinite_coordinate': ('voc', dict(years=GOOD, xml_text={
        'a': voc_xml([('dog', BOX)], size=(W, H)).replace(
            '<xmax>30<', '<xmax>inf<')}), 'error'),
    'voc_unreadable_image': ('voc', dict(years=GOOD, garbage_image=('a', )),
                             'error'),
    # without <size> the loader reads the image while it builds
    'voc_no_size_node': ('voc', dict(years=GOOD, sizes={'a': None}), 'ok'),
    'voc_no_size_node_missing_image': ('voc', dict(
        years=dict(GOOD, VOC2007={'a': [('dog', BOX)], 'c': []}),
        sizes={'c': None}, no_image=('c', )), 'error'),
    # filter_empty_gt drops c before anything reads its (missing) image
    'voc_missing_image_of_dropped_image': ('voc', dict(
        years=dict(GOOD, VOC2007={'a': [('dog', BOX)], 'c': []}),
        no_image=('c', )), 'warning'),
    'voc_image_below_filter_min_size': ('voc', dict(
        years=dict(GOOD, VOC2007={'a': [('dog', BOX)],
                                  'c': [('dog', [1, 1, 5, 5])]}),
        sizes={'c': (W, 6)}), 'warning'),
    'voc_size_differs_from_file': ('voc', dict(years=GOOD, xml_text={
        'a': voc_xml([('dog', BOX)], size=(80, 60))}), 'ok'),
    # Resize clips to the 64 x 48 file, inside which the box lies
    'voc_xml_size_smaller_than_file': ('voc', dict(years=GOOD, xml_text={
        'a': voc_xml([('dog', [40, 30, 60, 45])], size=(32, 24))}), 'ok'),
    # a 0 x 0 <size> (common in converted data) is below filter_cfg.min_size
    'voc_xml_size_zero': ('voc', dict(years=dict(GOOD, VOC2007={
        'a': [('dog', BOX)], 'c': [('dog', BOX)]}), xml_text={
        'c': voc_xml([('dog', BOX)], size=(0, 0))}), 'warning'),
    'voc_zero_width_box_val': ('voc', dict(years=dict(GOOD, VOC2007={'a': [
        ('dog', [20, 10, 20, 30]), ('cat', BOX)]}), split='val'), 'ok'),
    # Resize clips the box to zero width after the filter has run
    'voc_box_outside_filter_before_resize': ('voc', dict(
        years=dict(GOOD, VOC2007={'a': [('dog', [100, 10, 120, 30]),
                                        ('cat', BOX)]}),
        box_filter=True, filter_first=True), 'error'),
    'coco_clean': ('coco', dict(anns=GOOD_COCO), 'ok'),
    'coco_crowd_box': ('coco', dict(anns=GOOD_COCO + [
        _ann(0, [30, 20, 10, 10], iscrowd=1)]), 'ok'),
    'coco_no_area': ('coco', dict(anns=GOOD_COCO + [
        _no_area(_ann(0, [30, 20, 10, 10]))]), 'error'),
    # the overlap test drops it before the loader reads 'area'
    'coco_no_area_zero_width': ('coco', dict(anns=GOOD_COCO + [
        _no_area(_ann(0, [30, 20, 0, 10]))]), 'warning'),
    # two negative overlaps: the old check multiplied them to a positive area
    'coco_box_-50_-50_10_10': ('coco', dict(anns=GOOD_COCO + [
        _ann(0, [-50, -50, 10, 10])]), 'warning'),
    'coco_box_partly_outside': ('coco', dict(anns=GOOD_COCO + [
        _ann(0, [-5, -5, 20, 20])]), 'warning'),
    'coco_zero_width_box': ('coco', dict(anns=GOOD_COCO + [
        _ann(0, [10, 10, 0, 8])]), 'warning'),
    'coco_unknown_category': ('coco', dict(
        anns=GOOD_COCO + [_ann(0, [5, 5, 8, 8], 99)],
        categories=(dict(id=1, name='dog'), dict(id=2, name='cat'),
                    dict(id=99, name='unicorn'))), 'warning'),
    'coco_annotation_of_unknown_image': ('coco', dict(anns=GOOD_COCO + [
        _ann(7, [5, 5, 8, 8])]), 'warning'),
    'coco_image_without_annotations': ('coco', dict(anns=GOOD_COCO,
                                                    num_images=3), 'warning'),
    'coco_no_image_has_annotations': ('coco', dict(anns=[]), 'error'),
    'coco_missing_image': ('coco', dict(anns=GOOD_COCO, no_image=(1, )),
                           'error'),
    'coco_bbox_not_4_numbers': ('coco', dict(anns=GOOD_COCO + [
        dict(_ann(0, [1, 2, 3, 4]), bbox=[1, 2, 3])]), 'error'),
    # NaN overlaps: the loader's max(0, nan) is 0, so it drops the box
    'coco_nan_box': ('coco', dict(anns=GOOD_COCO + [
        dict(_ann(0, [1, 2, 3, 4]), bbox=[float('nan'), 2, 3, 4])]),
        'warning'),
    # kept as [0, 0, inf, 10]; Resize clips it to the image
    'coco_infinite_width': ('coco', dict(anns=GOOD_COCO + [
        dict(_ann(0, [0, 0, 1, 10]), bbox=[0, 0, float('inf'), 10])]),
        'warning'),
    'coco_annotations_not_a_list': ('coco', dict(anns=GOOD_COCO,
                                                 broken=True), 'error'),
    'coco_ignore_flag': ('coco', dict(anns=GOOD_COCO + [
        _ann(0, [30, 20, 10, 10], ignore=1)]), 'warning'),
    'coco_duplicate_annotation_ids': ('coco', dict(anns=GOOD_COCO,
                                                   same_ids=True), 'error'),
    'coco_image_below_filter_min_size': ('coco', dict(
        anns=GOOD_COCO + [_ann(2, [1, 1, 4, 4])], num_images=3,
        sizes={2: (W, 6)}), 'warning'),
    'coco_image_with_unknown_category_only': ('coco', dict(
        anns=GOOD_COCO + [_ann(2, [5, 5, 8, 8], 99)], num_images=3,
        categories=(dict(id=1, name='dog'), dict(id=2, name='cat'),
                    dict(id=99, name='unicorn'))), 'warning'),
}


def loader_verdict(cfg, split, n_images, n_boxes):
    """mmdet's own verdict: build the dataset, run the pipeline on every
    item, and compare what comes out with what was written."""
    init_default_scope('mmdet')
    try:
        ds = DATASETS.build(copy.deepcopy(cfg[f'{split}_dataloader'].dataset))
        if len(ds) == 0:
            return 'error'
        samples = [ds[i]['data_samples'] for i in range(len(ds))]
    except Exception:
        return 'error'
    out_boxes = 0
    for s in samples:
        gt = s.gt_instances.bboxes
        gt = getattr(gt, 'tensor', gt)  # mmdet's box type or a tensor
        if split == 'train' and len(gt) and (
                (gt[:, 2] <= gt[:, 0]) | (gt[:, 3] <= gt[:, 1])).any():
            return 'error'  # log(0) regression targets
        out_boxes += len(gt) + len(s.ignored_instances.bboxes)
    crossing = any(b[0] < 0 or b[1] < 0 or b[2] > W or b[3] > H
                   for i in range(len(ds))
                   for b in (inst['bbox'] for inst in
                             ds.get_data_info(i)['instances']))
    if len(ds) < n_images or out_boxes < n_boxes or \
            (crossing and split == 'train'):
        return 'warning'
    return 'ok'


@pytest.fixture(scope='module', autouse=True)
def _fast_gc():
    # mmengine's dataset build calls gc.collect(), ~0.7 s each with torch
    # and mmdet imported; frozen objects are not scanned
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize('name', list(CASES))
def test_check_agrees_with_loader(name, tmp_path):
    kind, kwargs, expected = CASES[name]
    build = voc_case if kind == 'voc' else coco_case
    cfg, n_images, n_boxes = build(str(tmp_path / 'data'),
                                   **copy.deepcopy(kwargs))
    split = kwargs.get('split', 'train')
    assert loader_verdict(cfg, split, n_images, n_boxes) == expected
    # the rules alone agree with the loader
    report = check_dataset(cfg, split, progress=False, verify_build=False)
    assert report.verdict() == expected, report.findings
    # and so does the exit status with mmdet's build as a safety net
    report = check_dataset(cfg, split, progress=False)
    assert bool(report.errors()) == (expected == 'error'), report.findings
    assert not [f for f in report.findings if f.kind == 'build_failed'
                and len(report.errors()) == 1], \
        'a build failure that no rule explains'


@pytest.mark.parametrize('name,one_class', [
    ('voc_one_box_each', False), ('voc_one_box_each', True),
    ('coco_clean', True), ('coco_no_area', True)])
def test_tool_exit_status_on_tiny_data(name, one_class, tmp_path):
    """The tool (report, json, histograms) on the smallest data: one class,
    one image per dataset, one box or none; exit 1 exactly when mmdet's
    build + pipeline fails (with one class, VOC2012's only image has no
    box of it: that sub-dataset is empty)."""
    tool = load_tool('tools/misc/check_dataset.py')
    kind, kwargs, _ = CASES[name]
    build = voc_case if kind == 'voc' else coco_case
    cfg, n_images, n_boxes = build(str(tmp_path / 'data'),
                                   **copy.deepcopy(kwargs))
    if one_class:  # the only class is the one of the first box
        for leaf in cfg.train_dataloader.dataset.get('datasets') or [
                cfg.train_dataloader.dataset]:
            leaf.metainfo = dict(classes=('dog', ))
    expected = loader_verdict(cfg, 'train', n_images, n_boxes)
    # by hand: with 'dog' only, the cat box is an unknown class
    assert expected == {('voc_one_box_each', False): 'ok',
                        ('voc_one_box_each', True): 'error',
                        ('coco_clean', True): 'warning',
                        ('coco_no_area', True): 'error'}[name, one_class]
    cfg.dump(str(tmp_path / 'cfg.py'))
    out = str(tmp_path / 'out')
    status = tool.main([str(tmp_path / 'cfg.py'), '--out-dir', out,
                        '--no-progress'])
    assert status == int(expected == 'error')
    assert osp.getsize(osp.join(out, 'box_stats.png')) > 1000
    assert json.load(open(osp.join(out, 'report.json')))['split'] == 'train'
