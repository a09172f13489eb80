"""Readers: the raw annotations of one mmdet dataset as normalised records.

Each reader follows its mmdet loader step by step (``XMLDataset`` and
``CocoDataset`` of mmdet 3.3, ``parse_data_info`` / ``filter_data``) and
records, for every box, what the loader does with it: keep it (as a target
or as an ignored instance), drop it and why, or raise. The rules
(``rules.py``) then decide how bad that is for the config's pipeline.
"""
import json
import math
import os.path as osp
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

from mmengine.fileio import get_local_path, list_from_file

__all__ = ['BoxRecord', 'ImageRecord', 'AnnotationFileError', 'read_voc',
           'read_coco', 'reader_for']


@dataclass
class BoxRecord:
    """One annotated box, as its loader sees it.

    ``box`` is ``(x1, y1, x2, y2)`` with the loader's arithmetic (VOC:
    ``int(float(v)) - 1``; COCO: ``x + w``), None when unparsable.
    Exactly one fate holds: ``error`` (the loader raises on it), ``dropped``
    (why the loader leaves it out) or kept (``ignored``: as an ignored
    instance, which never becomes a regression target).
    """
    where: str
    name: str
    box: Optional[Tuple[float, float, float, float]] = None
    ignored: bool = False
    dropped: Optional[str] = None
    error: Optional[str] = None

    @property
    def kept(self) -> bool:
        return self.error is None and self.dropped is None


@dataclass
class ImageRecord:
    """One image of the dataset's list, with its boxes.

    ``size``: (w, h) from the annotation (None: absent); ``size_from_image``:
    the loader reads the image file while it builds the dataset (VOC without
    ``<size>``); ``empty_for_filter``: ``filter_empty_gt`` drops it.
    """
    img_path: str
    ann_path: str
    size: Optional[Tuple[int, int]] = None
    size_from_image: bool = False
    boxes: List[BoxRecord] = field(default_factory=list)
    error: Optional[str] = None  # the loader raises on the annotation
    error_kind: str = 'bad_annotation'
    empty_for_filter: bool = False
    listed: bool = True  # False: boxes of no image in the loader's list

    @property
    def file(self) -> str:
        """The file a finding names: the XML file (VOC), else the image
        (COCO: the json holds every image)."""
        if self.ann_path.endswith('.xml'):
            return self.ann_path
        return self.img_path or self.ann_path


class AnnotationFileError(Exception):
    """The dataset's annotation (list) file itself cannot be read."""

    def __init__(self, kind: str, file: str, detail: str) -> None:
        super().__init__(f'{file}: {detail}')
        self.kind, self.file, self.detail = kind, file, detail


def _error(e: Exception) -> str:
    return f'{type(e).__name__}: {e}'


# ------------------------------------------------------------------ VOC
def _voc_box(obj, where: str, classes, bbox_min_size) -> BoxRecord:
    """mmdet's ``XMLDataset._parse_instance_info`` for one ``<object>``."""
    name_node = obj.find('name')
    name = name_node.text if name_node is not None else None
    rec = BoxRecord(where=where, name=str(name))
    if name_node is None:
        rec.error = 'no <name> (AttributeError in the loader)'
        return rec
    if name not in classes:
        rec.dropped = 'unknown_class'
        return rec
    try:
        difficult = obj.find('difficult')
        difficult = 0 if difficult is None else int(difficult.text)
        bnd = obj.find('bndbox')
        rec.box = tuple(int(float(bnd.find(k).text)) - 1
                        for k in ('xmin', 'ymin', 'xmax', 'ymax'))
    except (AttributeError, TypeError, ValueError, OverflowError) as e:
        rec.error = _error(e)  # e.g. int(float('inf')) overflows
        return rec
    w, h = rec.box[2] - rec.box[0], rec.box[3] - rec.box[1]
    small = bbox_min_size is not None and min(w, h) < bbox_min_size
    rec.ignored = bool(difficult) or small
    return rec


def read_voc(ds) -> Iterator[ImageRecord]:
    """Records of an ``XMLDataset`` (VOC layout), in the loader's order."""
    classes = set(ds.metainfo['classes'])
    try:
        img_ids = list_from_file(ds.ann_file, backend_args=ds.backend_args)
    except FileNotFoundError:
        raise AnnotationFileError('missing_annotation', ds.ann_file,
                                  'image id list not found (check '
                                  'data_root/ann_file)')
    bbox_min_size = ds.bbox_min_size
    for img_id in img_ids:
        xml_path = osp.join(ds.sub_data_root, ds.ann_subdir, f'{img_id}.xml')
        rec = ImageRecord(
            img_path=osp.join(ds.sub_data_root, ds.img_subdir,
                              f'{img_id}.jpg'),
            ann_path=xml_path)
        try:
            with get_local_path(xml_path,
                                backend_args=ds.backend_args) as local:
                root = ET.parse(local).getroot()
        except FileNotFoundError:
            rec.error, rec.error_kind = (f'annotation of image id {img_id} '
                                         f'not found'), 'missing_annotation'
            yield rec
            continue
        except ET.ParseError as e:
            rec.error = _error(e)
            yield rec
            continue
        node = root.find('size')
        if node is None:
            rec.size_from_image = True
        else:
            try:
                rec.size = (int(node.find('width').text),
                            int(node.find('height').text))
            except (AttributeError, TypeError, ValueError) as e:
                rec.error = f'<size>: {_error(e)}'
        for i, obj in enumerate(root.findall('object')):
            name = obj.find('name')
            where = f'object #{i} ({name.text if name is not None else ""})'
            rec.boxes.append(_voc_box(obj, where, classes, bbox_min_size))
        # XMLDataset.filter_data: images with no parsed instance
        rec.empty_for_filter = not any(b.kept for b in rec.boxes)
        yield rec


# ----------------------------------------------------------------- COCO
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coco_box(ann: dict, where: str, name: str, img_wh: Tuple[float, float],
              cat_ids: set) -> BoxRecord:
    """mmdet's ``CocoDataset.parse_data_info`` for one annotation, the
    checks in its order (so that e.g. a missing ``area`` only matters for a
    box that passes the overlap test)."""
    rec = BoxRecord(where=where, name=name)
    if ann.get('ignore', False):
        rec.dropped = 'ignore_flag'
        return rec
    bbox = ann.get('bbox')
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(_number(v) for v in bbox)):
        rec.error = f'bbox {bbox!r} is not 4 numbers'
        return rec
    x1, y1, w, h = bbox
    rec.box = (x1, y1, x1 + w, y1 + h)
    try:
        # overlap with the image, each side clamped at 0 as the loader does
        inter_w = max(0, min(x1 + w, img_wh[0]) - max(x1, 0))
        inter_h = max(0, min(y1 + h, img_wh[1]) - max(y1, 0))
    except TypeError as e:  # e.g. a width that is a string
        rec.error = f'image size {img_wh}: {_error(e)}'
        return rec
    if inter_w * inter_h == 0:
        rec.dropped = 'degenerate_box' if not (w > 0 and h > 0) \
            else 'outside_box'
        return rec
    if 'area' not in ann:
        rec.error = "no 'area' (KeyError in the loader)"
        return rec
    if not _number(ann['area']):
        rec.error = f"'area' {ann['area']!r} is not a number"
        return rec
    if ann['area'] <= 0 or w < 1 or h < 1:
        rec.dropped = 'degenerate_box'
        return rec
    if ann.get('category_id') not in cat_ids:
        rec.dropped = 'unknown_class'
        return rec
    rec.ignored = bool(ann.get('iscrowd', False))
    return rec


def read_coco(ds) -> Iterator[ImageRecord]:
    """Records of a ``CocoDataset`` (COCO json), in the loader's order."""
    try:
        with get_local_path(ds.ann_file,
                            backend_args=ds.backend_args) as local:
            with open(local) as f:
                coco = json.load(f)
    except FileNotFoundError:
        raise AnnotationFileError('missing_annotation', ds.ann_file,
                                  'annotation file not found (check '
                                  'data_root/ann_file)')
    except json.JSONDecodeError as e:
        raise AnnotationFileError('bad_annotation', ds.ann_file, _error(e))
    classes = ds.metainfo['classes']
    cat_names = {c.get('id'): c.get('name')
                 for c in coco.get('categories', [])}
    cat_ids = {i for i, n in cat_names.items() if n in classes}
    images = coco.get('images', [])
    if any('id' not in img for img in images):
        raise AnnotationFileError('bad_annotation', ds.ann_file,
                                  'an image has no "id" (KeyError in the '
                                  'COCO index)')
    image_ids = {img.get('id') for img in images}
    anns_by_img = defaultdict(list)
    ann_ids = []
    for ann in coco.get('annotations', []):
        if 'image_id' not in ann or 'id' not in ann or \
                'category_id' not in ann:
            missing = [k for k in ('id', 'image_id', 'category_id')
                       if k not in ann]
            raise AnnotationFileError(
                'bad_annotation', ds.ann_file,
                f'annotation {ann.get("id", "?")} has no {missing} '
                f'(KeyError in the COCO index)')
        ann_ids.append(ann['id'])
        if ann['image_id'] not in image_ids:
            # never loaded: the COCO index files it under an unknown image
            orphan = BoxRecord(where=f'annotation {ann["id"]}', name='',
                               dropped='orphan_annotation')
            yield ImageRecord(img_path='', ann_path=ds.ann_file,
                              listed=False, boxes=[orphan])
            continue
        anns_by_img[ann['image_id']].append(ann)
    duplicates = len(ann_ids) - len(set(ann_ids))
    if duplicates and getattr(ds, 'ANN_ID_UNIQUE', True):
        raise AnnotationFileError('bad_annotation', ds.ann_file,
                                  f'{duplicates} duplicate annotation ids '
                                  f'(the loader asserts they are unique)')
    for img in images:
        rec = ImageRecord(
            img_path=osp.join(ds.data_prefix.get('img', ''),
                              str(img.get('file_name'))),
            ann_path=ds.ann_file)
        try:
            rec.size = (img['width'], img['height'])
            img['file_name']  # noqa: B018  (the loader needs it)
        except KeyError as e:
            rec.error = f'image {img.get("id")} has no {e} (KeyError in ' \
                        f'the loader)'
            yield rec
            continue
        for ann in anns_by_img[img.get('id')]:
            name = cat_names.get(ann['category_id'],
                                 f'category_id={ann["category_id"]}')
            rec.boxes.append(_coco_box(
                ann, f'annotation {ann["id"]} ({name})', str(name),
                rec.size, cat_ids))
        # CocoDataset.filter_data keeps the images with any annotation of
        # a config class, even when the loader drops all its boxes
        rec.empty_for_filter = not any(
            ann['category_id'] in cat_ids for ann in anns_by_img[img['id']])
        yield rec


def reader_for(ds):
    """The reader of a (lazily built) mmdet dataset."""
    from mmdet.datasets import CocoDataset, XMLDataset
    if isinstance(ds, XMLDataset):
        return read_voc
    if isinstance(ds, CocoDataset):
        return read_coco
    raise ValueError(f'{type(ds).__name__} is not supported: only '
                     f'XMLDataset (VOC) and CocoDataset subclasses')


def finite_box(box) -> bool:
    return box is not None and all(math.isfinite(v) for v in box)
