"""Rules: how bad is a record, given the split and the config's pipeline.

Severity follows what mmdet does with the item:

* ``error``: mmdet's dataset build or a first pass over the data fails
  (an unreadable annotation or image that is read, a missing ``area``, a
  dataset that is empty after filtering, which mmengine cannot serialise),
  or a zero-size box reaches the train losses (log(0) regression targets);
* ``warning``: the loader or the pipeline drops or fixes the item (unknown
  class, box outside the image or degenerate and dropped, removed by
  ``FilterAnnotations``, clipped by ``Resize``, image dropped by
  ``filter_empty_gt``/``min_size``);
* ``info``: kept as it is and harmless to the losses (an image without
  boxes, an ignored degenerate box, a box below ``--min-size``, an
  annotated size that differs from the file).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .readers import BoxRecord, ImageRecord, finite_box
from .report import ERROR, INFO, WARNING, Finding

__all__ = ['PipelineInfo', 'LeafContext', 'pipeline_info', 'box_findings',
           'image_findings', 'empty_leaf_finding']

DROPPED = {  # reason -> (severity, kind, what the loader does)
    'unknown_class': (WARNING, 'unknown_class',
                      'its class is not in the config: dropped by the '
                      'loader'),
    'outside_box': (WARNING, 'outside_box',
                    'lies wholly outside the image: dropped by the loader'),
    'degenerate_box': (WARNING, 'degenerate_box',
                       'has no area (w or h < 1, or area <= 0): dropped by '
                       'the loader'),
    'orphan_annotation': (WARNING, 'bad_annotation',
                          'names an image_id that is not in "images": never '
                          'loaded'),
    'ignore_flag': (WARNING, 'ignored_box',
                    'has "ignore": dropped by the loader'),
}


@dataclass
class PipelineInfo:
    """What the split's pipeline does to boxes.

    ``box_filter``: ``min_gt_bbox_wh`` of a ``FilterAnnotations`` with
    ``by_box`` (it keeps w > min_w and h > min_h), None without one;
    ``filter_after_resize``: such a filter runs after the first ``Resize``
    (which clips boxes to the image).
    """
    box_filter: Optional[Tuple[float, float]] = None
    filter_after_resize: bool = False
    resize: bool = False


@dataclass
class LeafContext:
    train: bool              # the train split: kept boxes reach the losses
    test_mode: bool          # filter_data keeps every image
    filter_empty_gt: bool
    filter_min_size: float   # filter_cfg.min_size (image side)
    serialize_data: bool
    pipeline: PipelineInfo
    min_size: float          # report kept boxes with a side below this

    def drops_image(self, rec: ImageRecord,
                    wh: Optional[Tuple[int, int]]) -> Optional[str]:
        """Why ``filter_data`` drops the image, or None."""
        if self.test_mode:
            return None
        if self.filter_empty_gt and rec.empty_for_filter:
            return 'no box of a known class: filter_empty_gt drops the image'
        if wh is not None and min(wh) < self.filter_min_size:
            return (f'{wh[0]}x{wh[1]} is below filter_cfg.min_size='
                    f'{self.filter_min_size:g}: dropped by the loader')
        return None


def pipeline_info(transforms: Sequence) -> PipelineInfo:
    """Read a pipeline's (built) transforms."""
    from mmdet.datasets.transforms import FilterAnnotations
    info = PipelineInfo()
    first_resize = None
    for i, t in enumerate(transforms):
        if 'Resize' in type(t).__name__ and first_resize is None:
            first_resize, info.resize = i, True
        if isinstance(t, FilterAnnotations) and t.by_box:
            info.box_filter = tuple(float(v) for v in t.min_gt_bbox_wh)
            info.filter_after_resize = first_resize is not None
    return info


def _f(severity, kind, file, box: BoxRecord, text) -> Finding:
    coords = f' {list(box.box)}' if box.box is not None else ''
    return Finding(severity, kind, file, f'{box.where}{coords} {text}')


def box_findings(box: BoxRecord, file: str, img_wh: Optional[Tuple[int, int]],
                 ctx: LeafContext, used: bool = True) -> List[Finding]:
    """Findings for one box; ``used``: its image survives ``filter_data``.
    """
    if box.error is not None:
        return [_f(ERROR, 'bad_annotation', file, box,
                   f'makes the loader fail: {box.error}')]
    if box.dropped is not None:
        severity, kind, text = DROPPED[box.dropped]
        return [_f(severity, kind, file, box, text)]
    if not finite_box(box.box):
        # the COCO loader keeps only an infinite extent with a positive
        # overlap (NaN and -inf fail its overlap test): Resize clips it
        if ctx.pipeline.resize:
            return [_f(WARNING, 'outside_box', file, box,
                       'has an infinite extent: clipped by Resize')]
        return [_f(ERROR, 'bad_annotation', file, box,
                   'has non-finite coordinates and no Resize clips them')]
    x1, y1, x2, y2 = box.box
    w, h = x2 - x1, y2 - y1
    # a kept box that a zero size would turn into log(0) targets
    to_losses = ctx.train and used and not box.ignored
    pipe = ctx.pipeline
    filtered = pipe.box_filter is not None and (
        w <= pipe.box_filter[0] or h <= pipe.box_filter[1])
    out = []
    if w <= 0 or h <= 0:
        size = f'has w={w:g}, h={h:g}'
        if filtered:
            return [_f(WARNING, 'degenerate_box', file, box,
                       f'{size}: removed by FilterAnnotations')]
        if to_losses:
            return [_f(ERROR, 'degenerate_box', file, box,
                       f'{size} and reaches the train losses (no '
                       f'FilterAnnotations in the pipeline)')]
        return [_f(INFO, 'degenerate_box', file, box, f'{size} (' + (
            'ignored instance' if box.ignored else 'not trained on') + ')')]
    if filtered:
        out.append(_f(WARNING, 'small_box', file, box,
                      f'is {w:g}x{h:g} px: removed by FilterAnnotations '
                      f'(keeps w > {pipe.box_filter[0]:g}, '
                      f'h > {pipe.box_filter[1]:g})'))
    elif min(w, h) < ctx.min_size:
        out.append(_f(INFO, 'small_box', file, box,
                      f'is {w:g}x{h:g} px (< --min-size {ctx.min_size:g})'))
    if img_wh is None:
        return out
    iw, ih = img_wh
    if min(x2, iw) - max(x1, 0) <= 0 or min(y2, ih) - max(y1, 0) <= 0:
        where = f'lies wholly outside the {iw}x{ih} image'
        if not pipe.resize:
            out.append(_f(INFO, 'outside_box', file, box,
                          f'{where} (no Resize clips it)'))
        elif pipe.filter_after_resize:
            out.append(_f(WARNING, 'outside_box', file, box,
                          f'{where}: Resize clips it to zero size, then '
                          f'FilterAnnotations removes it'))
        elif to_losses:
            out.append(_f(ERROR, 'outside_box', file, box,
                          f'{where}: Resize clips it to zero size and it '
                          f'reaches the train losses (no FilterAnnotations '
                          f'after Resize)'))
        else:
            out.append(_f(INFO, 'outside_box', file, box, f'{where} (' + (
                'ignored instance' if box.ignored else 'not trained on')
                + ')'))
    elif x1 < 0 or y1 < 0 or x2 > iw or y2 > ih:
        where = f'lies partly outside the {iw}x{ih} image'
        if pipe.resize and ctx.train:
            out.append(_f(WARNING, 'outside_box', file, box,
                          f'{where}: clipped by Resize'))
        else:
            out.append(_f(INFO, 'outside_box', file, box, where))
    return out


def image_findings(rec: ImageRecord, image_error: Optional[Tuple[str, str]],
                   real_wh: Optional[Tuple[int, int]], dropped: Optional[str],
                   ) -> List[Finding]:
    """Findings for one listed image (not its boxes).

    ``image_error``: (kind, detail) when the file is missing/unreadable;
    ``dropped``: why ``filter_data`` drops the image, or None.
    """
    out = []
    if image_error is not None:
        kind, detail = image_error
        if rec.size_from_image:
            out.append(Finding(ERROR, kind, rec.img_path,
                               f'{detail} (the loader reads it for its size '
                               f'while it builds the dataset)'))
        elif dropped:
            out.append(Finding(WARNING, kind, rec.img_path,
                               f'{detail} (never read: the image is '
                               f'filtered out)'))
        else:
            out.append(Finding(ERROR, kind, rec.img_path,
                               f'{detail} (LoadImageFromFile fails)'))
    if dropped:
        out.append(Finding(WARNING, 'empty_image' if 'filter_empty_gt' in
                           dropped else 'small_image', rec.file,
                           f'image {rec.img_path}: {dropped}'))
    elif not any(b.kept for b in rec.boxes):
        out.append(Finding(INFO, 'empty_image', rec.file,
                           f'image {rec.img_path} has no box of a known '
                           f'class (kept as an image without objects)'))
    if rec.size is not None and real_wh is not None and \
            tuple(rec.size) != tuple(real_wh):
        out.append(Finding(INFO, 'size_mismatch', rec.img_path,
                           f'annotated {rec.size[0]}x{rec.size[1]}, file is '
                           f'{real_wh[0]}x{real_wh[1]}'))
    return out


def empty_leaf_finding(name: str, num_listed: int,
                       ctx: LeafContext) -> Finding:
    """A dataset with no image left after ``filter_data``."""
    why = ('lists no image' if num_listed == 0 else
           f'has no image left after filter_data ({num_listed} listed, all '
           f'dropped by filter_cfg)')
    if ctx.serialize_data:
        return Finding(ERROR, 'empty_dataset', name,
                       f'{why}: mmengine cannot serialise an empty data list '
                       f'(np.concatenate fails while the dataset is built)')
    return Finding(WARNING, 'empty_dataset', name,
                   f'{why} (serialize_data=False: it builds, with length 0)')
