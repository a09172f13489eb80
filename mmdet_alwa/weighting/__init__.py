"""Pure-torch loss-balancing rules (no mmdet needed).

``RULES`` maps a rule's class name to its class; :func:`build_rule` builds one
from a config dict such as ``dict(type='ALWA', variant=1, interval=100)``.
"""
from typing import Any, Dict, Mapping, Type

from .base import BaseWeighting, check_int, check_positive, check_range

RULES: Dict[str, Type[BaseWeighting]] = {}


def register_rule(cls: Type[BaseWeighting]) -> Type[BaseWeighting]:
    """Class decorator: make a rule buildable by name."""
    RULES[cls.__name__] = cls
    return cls


def build_rule(cfg: Mapping[str, Any]) -> BaseWeighting:
    """Build a rule from ``dict(type=name, **kwargs)``."""
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    if name not in RULES:
        raise ValueError(f'unknown weighting rule {name!r}; '
                         f'known rules: {sorted(RULES)}')
    return RULES[name](**cfg)


# rule modules register themselves on import (keep one rule per file)
from .alwa import ALWA  # noqa: E402,F401
from . import dtp, dwa, gradnorm, guided, tdb, uncertainty  # noqa: E402,F401

__all__ = ['BaseWeighting', 'RULES', 'register_rule', 'build_rule',
           'check_int', 'check_positive', 'check_range']
