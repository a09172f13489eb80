"""Check a detection dataset (VOC XML or COCO json) the way a config uses it.

mmdet's loaders drop, fix or keep bad annotations silently, and some data
that looks fine breaks the build (an empty image list, a dataset whose
images all lack objects, a COCO annotation without ``area``). This check
walks the config's dataset wrappers (``ConcatDataset``, ``RepeatDataset``,
``ClassBalancedDataset``... via :func:`.paths.iter_leaf_datasets`),
reads each leaf's raw annotations with a reader that follows its mmdet
loader (:mod:`.readers`: one normalised record per box), grades every
record with the rules (:mod:`.rules`: error when mmdet's build or first
pass over the data would fail or a zero-size box reaches the train losses,
warning when the loader or the pipeline drops or fixes the item, info when
it is kept as it is) and collects a report (:mod:`.report`). Finally
it builds the split's dataset with mmdet itself (``verify_build``) and
reports any failure the rules did not foresee, so that the exit status of
``tools/misc/check_dataset.py`` is never "OK" for data that does not build.
"""
import contextlib
import copy
import os.path as osp
import sys
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.fileio import get, get_local_path
from mmengine.utils import ProgressBar

from .paths import iter_leaf_datasets
from .readers import AnnotationFileError, finite_box, reader_for
from .report import ERROR, CheckReport, Finding, format_report
from .rules import (LeafContext, box_findings, empty_leaf_finding,
                    image_findings, pipeline_info)

__all__ = ['SPLITS', 'CheckReport', 'Finding', 'check_dataset',
           'format_report']

SPLITS = ('train', 'val', 'test')


def _split_cfg(cfg: Config, split: str) -> dict:
    """The dataset config of ``<split>_dataloader`` as a plain dict."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    loader = cfg.get(f'{split}_dataloader')
    if not loader or 'dataset' not in loader:
        raise ValueError(f'the config has no {split}_dataloader.dataset')
    dataset = loader['dataset']
    return copy.deepcopy(dataset.to_dict() if hasattr(dataset, 'to_dict')
                         else dict(dataset))


def _register(cfg: Config) -> None:
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    import mmdet_alwa  # noqa: F401  (our transforms in the pipelines)


def _read_image(path: str, decode: bool, backend_args
                ) -> Tuple[Optional[Tuple[int, int]], Optional[tuple]]:
    """``((w, h), None)`` or ``(None, (kind, detail))``."""
    from PIL import Image
    try:
        with get_local_path(path, backend_args=backend_args) as local:
            if not osp.isfile(local):
                raise FileNotFoundError(path)
            with Image.open(local) as img:
                real = img.size
            if decode:
                import mmcv
                if mmcv.imfrombytes(get(path, backend_args=backend_args),
                                    backend='cv2') is None:
                    raise OSError('cv2 cannot decode it')
    except FileNotFoundError:
        return None, ('missing_image', 'file not found')
    except Exception as e:  # PIL/cv2/backends raise many kinds
        return None, ('unreadable_image', f'{type(e).__name__}: {e}')
    return real, None


def _leaf_context(ds, parents, split: str, min_size: float) -> LeafContext:
    from mmengine.dataset import Compose
    transforms = list(getattr(ds.pipeline, 'transforms', []))
    for parent in reversed(parents):  # e.g. MultiImageMixDataset's
        if parent.get('pipeline'):
            transforms += Compose(parent['pipeline']).transforms
    filter_cfg = ds.filter_cfg or {}
    return LeafContext(
        train=split == 'train', test_mode=ds.test_mode,
        filter_empty_gt=bool(filter_cfg.get('filter_empty_gt', False)),
        filter_min_size=filter_cfg.get('min_size', 0) or 0,
        serialize_data=ds.serialize_data,
        pipeline=pipeline_info(transforms), min_size=min_size)


def _check_leaf(ds, ctx: LeafContext, report: CheckReport, decode: bool,
                progress: bool) -> None:
    name = f'{type(ds).__name__}({ds.ann_file})'
    report.datasets.append(name)
    for cls in ds.metainfo['classes']:
        report.class_counts.setdefault(cls, 0)
    listed = used = 0
    reader = reader_for(ds)
    try:
        records = list(reader(ds))
    except AnnotationFileError as e:
        report.findings.append(Finding(ERROR, e.kind, e.file, e.detail))
        return
    except Exception as e:  # a structure the reader (and loader) cannot use
        report.findings.append(Finding(
            ERROR, 'bad_annotation', ds.ann_file,
            f'cannot be read as {type(ds).__name__} annotations: '
            f'{type(e).__name__}: {e}'))
        return
    # reading the images is the slow part: the bar counts them
    bar = ProgressBar(len(records), file=sys.stderr) \
        if progress and records else None
    for rec in records:
        if bar:
            bar.update()
        if rec.error is not None:
            listed += 1
            report.findings.append(
                Finding(ERROR, rec.error_kind, rec.ann_path, rec.error))
            continue
        real, image_error = (None, None)
        if rec.listed:
            listed += 1
            real, image_error = _read_image(rec.img_path, decode,
                                            ds.backend_args)
        wh = rec.size or real
        dropped = ctx.drops_image(rec, wh) if rec.listed else None
        if rec.listed:
            used += not dropped
            report.findings += image_findings(rec, image_error, real, dropped)
        for box in rec.boxes:
            # Resize clips to the image it loads, whatever the annotation says
            report.findings += box_findings(box, rec.file, real or wh, ctx,
                                            used=not dropped)
            _count(report, box)
    if bar:
        sys.stderr.write('\n')
    report.num_images += listed
    report.num_used_images += used
    if used == 0:
        report.findings.append(empty_leaf_finding(name, listed, ctx))


def _count(report: CheckReport, box) -> None:
    if box.dropped == 'unknown_class':
        report.unknown_classes[box.name] = \
            report.unknown_classes.get(box.name, 0) + 1
    if not box.kept:
        return
    report.class_counts[box.name] = report.class_counts.get(box.name, 0) + 1
    report.num_boxes += 1
    report.num_ignored += int(box.ignored)
    x1, y1, x2, y2 = box.box
    if finite_box(box.box) and x2 - x1 > 0 and y2 - y1 > 0:
        report.sizes.append((x2 - x1, y2 - y1))


def build_error(dataset_cfg: dict) -> Optional[str]:
    """What mmdet's own (full) build of the dataset raises, or None."""
    from mmdet.registry import DATASETS
    try:
        # pycocotools prints to stdout: keep the tool's report clean
        with contextlib.redirect_stdout(sys.stderr):
            DATASETS.build(copy.deepcopy(dataset_cfg))
    except Exception as e:  # whatever the loader raises is the finding
        return f'{type(e).__name__}: {e}'
    return None


def check_dataset(cfg: Config, split: str = 'train', min_size: float = 1.0,
                  decode: bool = False, progress: bool = True,
                  verify_build: bool = True) -> CheckReport:
    """Check the dataset of ``cfg``'s ``<split>_dataloader``.

    Args:
        cfg: an mmdet config.
        split: ``'train'``, ``'val'`` or ``'test'``.
        min_size: kept boxes with a side below this (px) are noted.
        decode: decode every image fully (as ``LoadImageFromFile`` does)
            instead of reading its header only.
        progress: show a progress bar on stderr.
        verify_build: also build the dataset with mmdet and report its
            failure (``build_failed``), if any.
    """
    from mmdet.registry import DATASETS
    dataset_cfg = _split_cfg(cfg, split)
    _register(cfg)
    report = CheckReport(split=split)
    for leaf_cfg, parents in iter_leaf_datasets(dataset_cfg):
        ds = DATASETS.build(dict(copy.deepcopy(leaf_cfg), lazy_init=True))
        ctx = _leaf_context(ds, parents, split, min_size)
        _check_leaf(ds, ctx, report, decode, progress)
    if report.num_used_images == 0:
        report.findings.append(Finding(
            ERROR, 'no_images', ', '.join(report.datasets),
            f'the {split} split has no image to load'))
    if verify_build:
        error = build_error(dataset_cfg)
        if error is not None:
            report.findings.append(Finding(
                ERROR, 'build_failed', ', '.join(report.datasets),
                f'mmdet cannot build the {split} dataset: {error}'))
    return report
