"""Every training config drops degenerate ground-truth boxes.

A zero-width box (a VOC/COCO annotation error, or one that ``Resize`` clipped
to the image border) gives a NaN/inf box-regression target (IoU losses) or
an unlearnable one; docs/troubleshooting_nan.md. Every config with a
``train_dataloader`` must have mmdet's ``FilterAnnotations`` (or our counting
subclass) in the pipeline of every dataset it trains on, after ``Resize``.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from _helpers import REPO_ROOT

FILTERS = ('CountingFilterAnnotations', 'FilterAnnotations')
#: transforms that move or clip boxes: the filter must come after them
GEOMETRIC = ('Resize', 'RandomResize', 'RandomCrop', 'RandomChoiceResize',
             'RandomAffine', 'Mosaic', 'MixUp', 'RandomCenterCropPad')

CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p.split(osp.sep))


def leaf_datasets(dataset: dict):
    """The datasets holding a pipeline, through RepeatDataset /
    ConcatDataset / ClassBalancedDataset / MultiImageMixDataset /
    UnlabeledImageDataset-style wrappers (``dataset`` / ``datasets``)."""
    if dataset.get('pipeline') is not None and not (
            dataset.get('dataset') or dataset.get('datasets')):
        yield dataset
        return
    inner = dataset.get('datasets') or [dataset.get('dataset')]
    found = False
    for child in inner:
        if child:
            found = True
            yield from leaf_datasets(child)
    if dataset.get('pipeline') is not None and found:
        yield dataset  # a wrapper with its own pipeline (MultiImageMix...)


def _type(step) -> str:
    t = step.get('type')
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _has_boxes(pipeline) -> bool:
    return any(_type(s) == 'LoadAnnotations' and s.get('with_bbox', True)
               for s in pipeline)


def test_leaf_datasets_walks_wrappers():
    a = dict(type='VOCDataset', pipeline=[dict(type='A')])
    b = dict(type='VOCDataset', pipeline=[dict(type='B')])
    wrapped = dict(type='RepeatDataset', times=3, dataset=dict(
        type='ConcatDataset', datasets=[a, b]))
    assert list(leaf_datasets(wrapped)) == [a, b]


@pytest.mark.parametrize('config', CONFIGS)
def test_train_pipeline_filters_degenerate_boxes(config):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    loader = cfg.get('train_dataloader')
    if not loader:
        # none today; an inference-only config trains nothing to filter
        pytest.skip(f'{config} has no train_dataloader (inference only)')
    leaves = list(leaf_datasets(loader.dataset))
    assert leaves, f'{config}: no dataset with a pipeline'
    boxed = [d for d in leaves if _has_boxes(d.pipeline)]
    if not boxed:  # self-supervised (SimCLR): images only, no boxes
        assert config.startswith('configs/simclr/simclr'), config
        return
    for dataset in boxed:
        types = [_type(s) for s in dataset.pipeline]
        filters = [i for i, t in enumerate(types) if t in FILTERS]
        assert filters, f'{config}: {dataset.get("type")} pipeline {types} ' \
            f'has no FilterAnnotations'
        step = dataset.pipeline[filters[-1]]
        wh = step.get('min_gt_bbox_wh', (1., 1.))  # mmdet's default
        assert min(wh) > 0 and step.get('by_box', True), (config, step)
        geometric = [i for i, t in enumerate(types) if t in GEOMETRIC]
        assert not geometric or filters[-1] > max(geometric), \
            f'{config}: the filter must come after {types[max(geometric)]}'
