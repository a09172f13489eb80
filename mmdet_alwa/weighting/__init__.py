"""Pure-torch loss-balancing rules (no mmdet needed), one per module.

The public API::

    from mmdet_alwa.weighting import (ALWA, DWA, DTP, GuidedLoss,
                                      UncertaintyWeighting, GradNorm, TDB)

``RULES`` maps a rule's class name to its class; :func:`build_rule` builds one
from a config dict such as ``dict(type='ALWA', variant=1, interval=100)``.
"""
from .alwa import ALWA
from .base import BaseWeighting
from .dtp import DTP
from .dwa import DWA
from .gradnorm import GradNorm
from .guided import GuidedLoss
from .registry import RULES, build_rule, register_rule
from .tdb import TDB
from .uncertainty import UncertaintyWeighting
from .validation import check_int, check_positive, check_range

__all__ = ['ALWA', 'DWA', 'DTP', 'GuidedLoss', 'UncertaintyWeighting',
           'GradNorm', 'TDB', 'BaseWeighting', 'RULES', 'register_rule',
           'build_rule', 'check_int', 'check_positive', 'check_range']
