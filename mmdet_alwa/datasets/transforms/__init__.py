
from .counting_filter import CountingFilterAnnotations  # noqa: F401
