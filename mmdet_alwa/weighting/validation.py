"""Argument checks shared by the whole package: each returns the value
(as a float for the number checks) or raises ``ValueError`` naming the
argument and what it must be.

This module imports nothing but ``math``: the pure rules of
:mod:`mmdet_alwa.weighting` use it, and so does the mmdet glue (hooks,
optimizer wrappers, losses, heads, transforms), which may import from here.
"""
import math

__all__ = ['check_positive', 'check_int', 'check_range']


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)`` or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return float(value)


def check_int(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f'{name} must be an integer >= {minimum}, got {value!r}')
    return value


def check_range(name: str, value: float, low: float, high: float,
                low_inclusive: bool = True,
                high_inclusive: bool = True) -> float:
    """Return ``float(value)`` if it lies in the interval, else ``ValueError``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and \
             (value <= high if high_inclusive else value < high)
    if not ok:
        lb, rb = '[' if low_inclusive else '(', ']' if high_inclusive else ')'
        raise ValueError(
            f'{name} must be in {lb}{low}, {high}{rb}, got {value!r}')
    return float(value)
