"""The dataset check: one entry point, :func:`check_dataset`
(``tools/misc/check_dataset.py``), which reads a config's datasets as mmdet's
loaders do and grades what it finds.

Its pieces: :mod:`.dataset` (the walk over a split's leaf datasets and
mmdet's own build), :mod:`.readers` (one record per box, as mmdet's loaders
see it), :mod:`.rules` (severity), :mod:`.report`, and :mod:`.paths` (the
config's dataset wrappers and the quick check that the paths exist, which
:func:`mmdet_alwa.datasets.prepare_datasets` runs before training or
testing).
"""
from .dataset import SPLITS, build_error, check_dataset
from .paths import (check_dataset_paths, iter_leaf_datasets,
                    missing_dataset_paths)
from .readers import BoxRecord, ImageRecord, read_coco, read_voc
from .report import CheckReport, Finding, box_statistics, format_report
from .rules import LeafContext, PipelineInfo, box_findings, image_findings

__all__ = ['check_dataset', 'SPLITS', 'build_error', 'check_dataset_paths',
           'iter_leaf_datasets', 'missing_dataset_paths', 'BoxRecord',
           'ImageRecord', 'read_voc', 'read_coco', 'CheckReport', 'Finding',
           'box_statistics', 'format_report', 'LeafContext', 'PipelineInfo',
           'box_findings', 'image_findings']
