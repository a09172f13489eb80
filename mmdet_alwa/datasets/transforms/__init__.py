
from .counting_filter import CountingFilterAnnotations  # noqa: F401
from . import simclr  # noqa: F401
