"""Per-box fates of the dataset-check readers, worked by hand from mmdet
3.3's ``CocoDataset.parse_data_info`` / ``XMLDataset._parse_instance_info``
(the whole readers are compared with mmdet's real build in
tests/test_tools/test_check_dataset_vs_loader.py)."""
import xml.etree.ElementTree as ET

import pytest

from mmdet_alwa.datasets.check.readers import _coco_box, _voc_box

IMG_WH = (100, 80)


@pytest.mark.parametrize('ann, box, fate', [
    # partly outside: overlap 10 x 10 > 0, kept (mmdet clamps each side)
    (dict(bbox=[-50, -50, 60, 60], area=3600, category_id=1),
     (-50, -50, 10, 10), None),
    # wholly outside: both overlaps clamp to 0 -> dropped, not an error
    (dict(bbox=[-50, -50, 10, 10], area=100, category_id=1),
     (-50, -50, -40, -40), 'outside_box'),
    (dict(bbox=[10, 10, 0, 5], area=0, category_id=1), (10, 10, 10, 15),
     'degenerate_box'),
    (dict(bbox=[10, 10, 5, 5], area=25, category_id=7), (10, 10, 15, 15),
     'unknown_class'),
    (dict(bbox=[10, 10, 5, 5], area=25, category_id=1, ignore=True), None,
     'ignore_flag'),
])
def test_coco_box_fates(ann, box, fate):
    rec = _coco_box(ann, 'a.json', 'cat', IMG_WH, {1})
    assert rec.box == box and rec.dropped == fate and rec.error is None


def test_coco_box_without_area_is_an_error_only_when_it_overlaps():
    inside = _coco_box(dict(bbox=[1, 1, 5, 5], category_id=1), 'a', 'c',
                       IMG_WH, {1})
    outside = _coco_box(dict(bbox=[200, 1, 5, 5], category_id=1), 'a', 'c',
                        IMG_WH, {1})
    assert 'area' in inside.error
    assert outside.error is None and outside.dropped == 'outside_box'


def _obj(name='dog', box=('10', '20', '50', '60'), difficult='0'):
    xml = (f'<object><name>{name}</name><difficult>{difficult}</difficult>'
           '<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>'
           '<ymax>{}</ymax></bndbox></object>').format(*box)
    return ET.fromstring(xml)


def test_voc_box_arithmetic_and_ignore_rules():
    # int(float(v)) - 1 per coordinate
    rec = _voc_box(_obj(box=('10.7', '20', '50', '60')), 'x.xml', ('dog',),
                   None)
    assert rec.box == (9, 19, 49, 59) and not rec.ignored
    # 40 x 40 box under bbox_min_size=41: ignored, not dropped
    small = _voc_box(_obj(), 'x.xml', ('dog',), 41)
    assert small.ignored and small.dropped is None
    assert _voc_box(_obj(difficult='1'), 'x', ('dog',), None).ignored
    assert _voc_box(_obj(name='cat'), 'x', ('dog',), None).dropped == \
        'unknown_class'
    assert _voc_box(_obj(box=('a', '1', '2', '3')), 'x', ('dog',),
                    None).error
