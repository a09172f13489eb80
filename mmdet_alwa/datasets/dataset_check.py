"""Check a detection dataset (VOC XML or COCO json) the way a config uses it.

mmdet's loaders drop or keep bad annotations silently: the COCO loader drops
boxes narrower/shorter than 1 px, boxes wholly outside the image and boxes of
unknown categories; the VOC loader drops unknown class names but *keeps*
zero-size and outside boxes, which then reach the losses. This module builds
the config's dataset through mmdet's registry (wrappers such as
``RepeatDataset``/``ConcatDataset`` included, without loading it), reads the
raw annotation files itself and reports every finding with its file.

Severity. An *error* would break or poison training:

* ``missing_image`` / ``unreadable_image``: ``LoadImageFromFile`` raises;
* ``missing_annotation`` / ``bad_annotation``: the loader raises (a missing
  or unparsable XML file, a box that is not 4 numbers...);
* ``degenerate_box`` (w or h <= 0) and wholly ``outside_box`` that the
  loader keeps (VOC, not ``difficult``) in the *train* split when the train
  pipeline has no ``FilterAnnotations`` (for outside boxes: none after
  ``Resize``, which clips them to zero size) -- log(0) regression targets;
* ``no_images``: the split is empty.

Everything else is a *warning* (and an error under ``strict``):
``unknown_class`` (the loader drops those boxes), ``empty_image``,
``small_box`` (below ``min_size``), ``outside_box`` that is dropped, clipped
or filtered, ``degenerate_box`` that is dropped/ignored/filtered,
``size_mismatch`` (annotated image size differs from the file).
"""
import json
import math
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.fileio import get, get_local_path, list_from_file
from mmengine.utils import ProgressBar

__all__ = ['Finding', 'CheckReport', 'check_dataset', 'build_split_dataset',
           'leaf_datasets']

SPLITS = ('train', 'val', 'test')


@dataclass
class Finding:
    severity: str  # 'error' or 'warning'
    kind: str
    file: str      # the file to fix: XML file (VOC), image file (COCO)
    detail: str


@dataclass
class CheckReport:
    split: str
    datasets: List[str] = field(default_factory=list)
    num_images: int = 0
    num_boxes: int = 0
    num_ignored: int = 0  # VOC difficult / COCO iscrowd or ignore
    class_counts: Dict[str, int] = field(default_factory=dict)
    unknown_classes: Dict[str, int] = field(default_factory=dict)
    findings: List[Finding] = field(default_factory=list)
    # (w, h) of every box with w > 0 and h > 0, for the statistics
    sizes: List[Tuple[float, float]] = field(default_factory=list)

    def add(self, severity: str, kind: str, file: str, detail: str) -> None:
        self.findings.append(Finding(severity, kind, file, detail))

    def errors(self, strict: bool = False) -> List[Finding]:
        return [f for f in self.findings
                if strict or f.severity == 'error']

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop('sizes')
        out['box_stats'] = box_statistics(self.sizes)
        return out


def _set_lazy(cfg: dict) -> None:
    """Build the dataset tree without loading annotations."""
    cfg['lazy_init'] = True
    if isinstance(cfg.get('dataset'), dict):
        _set_lazy(cfg['dataset'])
    for sub in cfg.get('datasets') or []:
        _set_lazy(sub)


def build_split_dataset(cfg: Config, split: str):
    """The (lazily initialised) dataset of ``<split>_dataloader``."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    import mmdet_alwa  # noqa: F401  (our transforms in the pipelines)
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    loader = cfg.get(f'{split}_dataloader')
    if not loader or 'dataset' not in loader:
        raise ValueError(f'the config has no {split}_dataloader.dataset')
    dataset_cfg = loader['dataset'].to_dict() \
        if hasattr(loader['dataset'], 'to_dict') else dict(loader['dataset'])
    _set_lazy(dataset_cfg)
    return DATASETS.build(dataset_cfg)


def leaf_datasets(dataset) -> list:
    """The datasets inside Repeat/Concat/ClassBalanced... wrappers."""
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in leaf_datasets(sub)]
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'ann_file'):
        return leaf_datasets(dataset.dataset)
    return [dataset]


def _pipeline_filters(dataset) -> Tuple[bool, bool]:
    """(has a box filter, has one after Resize) in the dataset's pipeline."""
    from mmdet.datasets.transforms import FilterAnnotations
    transforms = list(getattr(dataset.pipeline, 'transforms', []))
    names = [type(t).__name__ for t in transforms]
    filters = [i for i, t in enumerate(transforms)
               if isinstance(t, FilterAnnotations) and t.by_box]
    resize = [i for i, n in enumerate(names) if 'Resize' in n]
    after = bool(filters) and (not resize or filters[-1] > resize[0])
    return bool(filters), after


class _Checker:

    def __init__(self, report: CheckReport, min_size: float, decode: bool,
                 train: bool) -> None:
        self.report = report
        self.min_size = min_size
        self.decode = decode
        self.train = train

    # ---------------------------------------------------------- images
    def image(self, path: str, size: Optional[Tuple[int, int]],
              backend_args=None) -> Optional[Tuple[int, int]]:
        """Check an image file; return its (w, h) or None if broken."""
        from PIL import Image
        try:
            with get_local_path(path, backend_args=backend_args) as local:
                if not osp.isfile(local):
                    raise FileNotFoundError(path)
                with Image.open(local) as img:
                    real = img.size
                if self.decode:
                    import mmcv
                    if mmcv.imfrombytes(get(path, backend_args=backend_args),
                                        backend='cv2') is None:
                        raise OSError('cv2 cannot decode it')
        except FileNotFoundError:
            self.report.add('error', 'missing_image', path, 'file not found')
            return None
        except Exception as e:  # PIL/cv2/backends raise many kinds
            self.report.add('error', 'unreadable_image', path,
                            f'{type(e).__name__}: {e}')
            return None
        if size is not None and tuple(size) != tuple(real):
            self.report.add('warning', 'size_mismatch', path,
                            f'annotated {size[0]}x{size[1]}, file is '
                            f'{real[0]}x{real[1]}')
        return real

    # ----------------------------------------------------------- boxes
    def box(self, file: str, where: str, box: Sequence[float],
            img_wh: Optional[Tuple[int, int]], kept: bool, ignored: bool,
            filters: Tuple[bool, bool]) -> None:
        """One known-class box ``[x1, y1, x2, y2]``.

        ``kept``: the loader passes it on; ``ignored``: as an ignored
        instance (VOC difficult), which never becomes a regression target.
        """
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        has_filter, filter_after_resize = filters
        reaches_losses = kept and not ignored and self.train
        if w <= 0 or h <= 0:
            fate = ('dropped by the loader' if not kept else
                    'ignored instance' if ignored else
                    'filtered by the train pipeline'
                    if has_filter and self.train else None)
            severity = 'error' if reaches_losses and not has_filter \
                else 'warning'
            self.report.add(severity, 'degenerate_box', file,
                            f'{where} {list(box)} has w={w:g}, h={h:g}' +
                            (f' ({fate})' if fate else ''))
            return
        self.report.sizes.append((w, h))
        if min(w, h) < self.min_size:
            self.report.add('warning', 'small_box', file,
                            f'{where} {list(box)} is {w:g}x{h:g} px '
                            f'(< --min-size {self.min_size:g})')
        if img_wh is None:
            return
        iw, ih = img_wh
        inter_w = min(x2, iw) - max(x1, 0)
        inter_h = min(y2, ih) - max(y1, 0)
        if inter_w <= 0 or inter_h <= 0:
            severity = 'error' if reaches_losses and \
                not filter_after_resize else 'warning'
            fate = 'dropped by the loader' if not kept else \
                'zero-size after Resize clips it' + (
                    ', then filtered' if filter_after_resize else '')
            self.report.add(severity, 'outside_box', file,
                            f'{where} {list(box)} lies wholly outside the '
                            f'{iw}x{ih} image ({fate})')
        elif x1 < 0 or y1 < 0 or x2 > iw or y2 > ih:
            self.report.add('warning', 'outside_box', file,
                            f'{where} {list(box)} lies partly outside the '
                            f'{iw}x{ih} image (clipped by Resize)')

    def count(self, name: str, known: bool) -> None:
        target = self.report.class_counts if known \
            else self.report.unknown_classes
        target[name] = target.get(name, 0) + 1


def _check_voc(ds, checker: _Checker, report: CheckReport,
               progress: bool) -> None:
    classes = set(ds.metainfo['classes'])
    filters = _pipeline_filters(ds)
    min_size = ds.bbox_min_size
    try:
        img_ids = list_from_file(ds.ann_file, backend_args=ds.backend_args)
    except FileNotFoundError:
        report.add('error', 'missing_annotation', ds.ann_file,
                   'image id list not found (check data_root/ann_file)')
        return
    bar = ProgressBar(len(img_ids), file=sys.stderr) if progress else None
    for img_id in img_ids:
        if bar:
            bar.update()
        report.num_images += 1
        xml_path = osp.join(ds.sub_data_root, ds.ann_subdir, f'{img_id}.xml')
        img_path = osp.join(ds.sub_data_root, ds.img_subdir, f'{img_id}.jpg')
        try:
            with get_local_path(xml_path,
                                backend_args=ds.backend_args) as local:
                root = ET.parse(local).getroot()
        except FileNotFoundError:
            report.add('error', 'missing_annotation', xml_path,
                       f'annotation of image id {img_id} not found')
            checker.image(img_path, None, ds.backend_args)
            continue
        except ET.ParseError as e:
            report.add('error', 'bad_annotation', xml_path, str(e))
            continue
        size = None
        try:
            node = root.find('size')
            if node is not None:
                size = (int(node.find('width').text),
                        int(node.find('height').text))
        except (AttributeError, TypeError, ValueError) as e:
            report.add('error', 'bad_annotation', xml_path,
                       f'<size>: {type(e).__name__}: {e}')
        img_wh = checker.image(img_path, size, ds.backend_args)
        img_wh = size or img_wh
        num_known = 0
        for i, obj in enumerate(root.findall('object')):
            name_node = obj.find('name')
            name = name_node.text if name_node is not None else None
            where = f'object #{i} ({name})'
            if name not in classes:
                checker.count(str(name), known=False)
                report.add('warning', 'unknown_class', xml_path,
                           f'{where}: class {name!r} is not in the config '
                           f'(dropped by the loader)')
                continue
            try:
                bnd = obj.find('bndbox')
                # mmdet: int(float(v)) - 1, so w = xmax - xmin
                box = [int(float(bnd.find(k).text)) - 1
                       for k in ('xmin', 'ymin', 'xmax', 'ymax')]
                difficult = obj.find('difficult')
                difficult = difficult is not None and int(difficult.text)
            except (AttributeError, TypeError, ValueError) as e:
                report.add('error', 'bad_annotation', xml_path,
                           f'{where}: {type(e).__name__}: {e}')
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            ignored = bool(difficult) or (
                min_size is not None and min(w, h) < min_size)
            checker.count(name, known=True)
            report.num_boxes += 1
            report.num_ignored += int(ignored)
            num_known += 1
            checker.box(xml_path, where, box, img_wh, kept=True,
                        ignored=ignored, filters=filters)
        if num_known == 0:
            report.add('warning', 'empty_image', xml_path,
                       f'image {img_path} has no box of a known class')
    if bar:
        sys.stderr.write('\n')


def _check_coco(ds, checker: _Checker, report: CheckReport,
                progress: bool) -> None:
    classes = set(ds.metainfo['classes'])
    filters = _pipeline_filters(ds)
    try:
        with get_local_path(ds.ann_file,
                            backend_args=ds.backend_args) as local:
            with open(local) as f:
                coco = json.load(f)
    except FileNotFoundError:
        report.add('error', 'missing_annotation', ds.ann_file,
                   'annotation file not found (check data_root/ann_file)')
        return
    except json.JSONDecodeError as e:
        report.add('error', 'bad_annotation', ds.ann_file, str(e))
        return
    cat_names = {c['id']: c['name'] for c in coco.get('categories', [])}
    anns_by_img = defaultdict(list)
    image_ids = {img['id'] for img in coco.get('images', [])}
    for ann in coco.get('annotations', []):
        if ann.get('image_id') not in image_ids:
            report.add('warning', 'bad_annotation', ds.ann_file,
                       f'annotation {ann.get("id")} names image_id '
                       f'{ann.get("image_id")!r}, which is not in "images"')
            continue
        anns_by_img[ann['image_id']].append(ann)
    images = coco.get('images', [])
    bar = ProgressBar(len(images), file=sys.stderr) if progress else None
    for img in images:
        if bar:
            bar.update()
        report.num_images += 1
        img_path = osp.join(ds.data_prefix.get('img', ''), img['file_name'])
        size = (img.get('width'), img.get('height'))
        real = checker.image(img_path, size if None not in size else None,
                             ds.backend_args)
        img_wh = size if None not in size else real
        num_known = 0
        for ann in anns_by_img[img['id']]:
            name = cat_names.get(ann.get('category_id'),
                                 f'category_id={ann.get("category_id")}')
            where = f'annotation {ann.get("id")} ({name})'
            if name not in classes:
                checker.count(str(name), known=False)
                report.add('warning', 'unknown_class', img_path,
                           f'{where}: class {name!r} is not in the config '
                           f'(dropped by the loader)')
                continue
            bbox = ann.get('bbox')
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and
                    all(isinstance(v, (int, float)) and math.isfinite(v)
                        for v in bbox)):
                report.add('error', 'bad_annotation', img_path,
                           f'{where}: bbox {bbox!r} is not 4 finite numbers')
                continue
            x, y, w, h = bbox
            ignored = bool(ann.get('iscrowd', False) or
                           ann.get('ignore', False))
            # the checks of mmdet's CocoDataset.parse_data_info
            kept = not ann.get('ignore', False) and w >= 1 and h >= 1 and \
                ann.get('area', w * h) > 0
            if img_wh is not None:
                kept &= (min(x + w, img_wh[0]) - max(x, 0)) * \
                    (min(y + h, img_wh[1]) - max(y, 0)) > 0
            checker.count(name, known=True)
            report.num_boxes += 1
            report.num_ignored += int(ignored)
            num_known += 1
            checker.box(img_path, where, [x, y, x + w, y + h], img_wh,
                        kept=kept, ignored=ignored, filters=filters)
        if num_known == 0:
            report.add('warning', 'empty_image', img_path,
                       'no box of a known class')
    if bar:
        sys.stderr.write('\n')


def check_dataset(cfg: Config, split: str = 'train', min_size: float = 1.0,
                  decode: bool = False, progress: bool = True) -> CheckReport:
    """Check the dataset of ``cfg``'s ``<split>_dataloader``.

    Args:
        cfg: an mmdet config.
        split: ``'train'``, ``'val'`` or ``'test'``.
        min_size: boxes with a side below this (px) are reported.
        decode: decode every image fully (as ``LoadImageFromFile`` does)
            instead of reading its header only.
        progress: show a progress bar on stderr.
    """
    from mmdet.datasets import CocoDataset, XMLDataset
    report = CheckReport(split=split)
    dataset = build_split_dataset(cfg, split)
    checker = _Checker(report, min_size, decode, train=split == 'train')
    for ds in leaf_datasets(dataset):
        report.datasets.append(f'{type(ds).__name__}({ds.ann_file})')
        for name in ds.metainfo['classes']:
            report.class_counts.setdefault(name, 0)
        if isinstance(ds, XMLDataset):
            _check_voc(ds, checker, report, progress)
        elif isinstance(ds, CocoDataset):
            _check_coco(ds, checker, report, progress)
        else:
            raise ValueError(f'{type(ds).__name__} is not supported: only '
                             f'XMLDataset (VOC) and CocoDataset subclasses')
    if report.num_images == 0:
        report.add('error', 'no_images', ', '.join(report.datasets),
                   f'the {split} split has no images')
    return report


def box_statistics(sizes: Sequence[Tuple[float, float]]) -> dict:
    """Percentiles (5, 25, 50, 75, 95) of box width, height, sqrt(area) and
    aspect ratio w/h."""
    if not sizes:
        return {}
    wh = np.asarray(sizes, dtype=np.float64)
    values = dict(width=wh[:, 0], height=wh[:, 1],
                  sqrt_area=np.sqrt(wh[:, 0] * wh[:, 1]),
                  aspect_w_h=wh[:, 0] / wh[:, 1])
    q = (5, 25, 50, 75, 95)
    return {k: dict(zip((f'p{p}' for p in q),
                        np.percentile(v, q).round(3).tolist()))
            for k, v in values.items()}


def plot_box_histograms(sizes: Sequence[Tuple[float, float]],
                        path: str, title: str = '') -> None:
    """Histograms of box sqrt(area), width, height and aspect (log x)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    wh = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    panels = [('sqrt(area) [px]', np.sqrt(wh[:, 0] * wh[:, 1])),
              ('width [px]', wh[:, 0]), ('height [px]', wh[:, 1]),
              ('aspect ratio w/h', wh[:, 0] / np.maximum(wh[:, 1], 1e-9))]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (label, v) in zip(axes, panels):
        if len(v):
            bins = np.geomspace(max(v.min(), 1e-3), max(v.max(), 1e-2), 40)
            ax.hist(v, bins=bins)
        ax.set_xscale('log')
        ax.xaxis.set_minor_formatter(NullFormatter())  # no clutter
        ax.set_xlabel(label)
    axes[0].set_ylabel('boxes')
    fig.suptitle(f'{title} ({len(wh)} boxes)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_report(report: CheckReport, max_list: int = 20,
                  strict: bool = False) -> str:
    """The human-readable summary printed by the tool."""
    lines = [f'split: {report.split}',
             'datasets: ' + ', '.join(report.datasets),
             f'images: {report.num_images}   boxes of known classes: '
             f'{report.num_boxes} (ignored/difficult/crowd: '
             f'{report.num_ignored})', 'boxes per class:']
    width = max([len(c) for c in report.class_counts] + [5])
    lines += [f'  {c:<{width}} {n}' for c, n in report.class_counts.items()]
    if report.unknown_classes:
        lines.append('classes in the annotations that the config does not '
                     'know (dropped by the loader): ' + ', '.join(
                         f'{c} ({n})' for c, n in
                         sorted(report.unknown_classes.items())))
    stats = box_statistics(report.sizes)
    if stats:
        lines.append('box statistics (p5 / p25 / median / p75 / p95):')
        lines += [f'  {k:<10} ' + ' / '.join(f'{v:g}' for v in q.values())
                  for k, q in stats.items()]
    for severity in ('error', 'warning'):
        found = [f for f in report.findings if f.severity == severity]
        if not found:
            continue
        kinds = Counter(f.kind for f in found)
        lines.append(f'{severity.upper()}S ({len(found)}): ' + ', '.join(
            f'{k} {n}' for k, n in kinds.items()))
        for kind in kinds:
            of_kind = [f for f in found if f.kind == kind]
            for f in of_kind[:max_list]:
                lines.append(f'  [{kind}] {f.file}: {f.detail}')
            if len(of_kind) > max_list:
                lines.append(f'  [{kind}] ... {len(of_kind) - max_list} '
                             f'more (see report.json)')
    errors = report.errors(strict)
    lines.append(f'result: FAILED, {len(errors)} error(s)'
                 f'{" (--strict: warnings count)" if strict else ""}'
                 if errors else 'result: OK')
    return '\n'.join(lines)


def write_outputs(report: CheckReport, out_dir: str, title: str) -> dict:
    """Write ``report.json`` and ``box_stats.png``; return their paths."""
    import os
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(json=osp.join(out_dir, 'report.json'),
                 png=osp.join(out_dir, 'box_stats.png'))
    with open(paths['json'], 'w') as f:
        json.dump(report.to_dict(), f, indent=1)
    plot_box_histograms(report.sizes, paths['png'], title)
    return paths
