"""Evaluation protocols run by the tools (not imported by ``mmdet_alwa``,
registers nothing): :mod:`.linear_probe`, the multi-label linear probe of a
frozen encoder (``tools/analysis_tools/linear_probe.py``)."""
