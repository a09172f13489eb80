"""Pieces of the dataset check (``mmdet_alwa.datasets.dataset_check``):
readers (one record per box, as mmdet's loaders see it), rules (severity)
and the report."""
from .readers import BoxRecord, ImageRecord, read_coco, read_voc
from .report import CheckReport, Finding, box_statistics, format_report
from .rules import LeafContext, PipelineInfo, box_findings, image_findings

__all__ = ['BoxRecord', 'ImageRecord', 'read_voc', 'read_coco',
           'CheckReport', 'Finding', 'box_statistics', 'format_report',
           'LeafContext', 'PipelineInfo', 'box_findings', 'image_findings']
