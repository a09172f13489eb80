"""Evaluation: :class:`.per_class_ap.PerClassAPMetric` (registered in mmdet's
``METRICS``: per-class AP@0.5, recall and detection counts over mmdet's
``eval_map``), and :mod:`.linear_probe`, the multi-label linear probe of a
frozen encoder run by ``tools/analysis_tools/linear_probe.py`` (imported by
that tool only)."""
from .per_class_ap import PerClassAPMetric

__all__ = ['PerClassAPMetric']
