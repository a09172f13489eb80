"""Pure-torch loss-balancing rules (no mmdet needed), one per module.

The public API::

    from mmdet_alwa.weighting import (ALWA, DWA, DTP, GuidedLoss,
                                      UncertaintyWeighting, GradNorm, TDB,
                                      FAMO, RLW, GLS, IMTL_L, STCH)

FAMO, RLW, GLS, IMTL-L and STCH are adapters over TorchJD's scalarizers
(``torchjd.scalarization``, which needs only torch); :mod:`.scalarized`.
UPGrad, MGDA, PCGrad, IMTL_G, AlignedMTL, DualProj and CAGrad weight the
losses by TorchJD's Gramian weightings of the task gradients at a shared
representation (:mod:`.gramian`); UPGrad and DualProj need the extra
``mmdet_alwa[quadprog]``, CAGrad ``mmdet_alwa[cagrad]`` (an ``ImportError``
naming it when the rule is built).

``RULES`` maps a rule's class name to its class; :func:`build_rule` builds one
from a config dict such as ``dict(type='ALWA', variant=1, interval=100)``.
"""
from .aligned_mtl import AlignedMTL
from .alwa import ALWA
from .base import BaseWeighting
from .cagrad import CAGrad
from .dualproj import DualProj
from .dtp import DTP
from .dwa import DWA
from .famo import FAMO
from .gls import GLS
from .gradnorm import GradNorm
from .gramian import GramianWeighting, representation_gramian
from .guided import GuidedLoss
from .imtl_g import IMTL_G
from .imtl_l import IMTL_L
from .mgda import MGDA
from .pcgrad import PCGrad
from .registry import RULES, build_rule, register_rule
from .rlw import RLW
from .scalarized import ScalarizerWeighting
from .stch import STCH
from .tdb import TDB
from .upgrad import UPGrad
from .uncertainty import UncertaintyWeighting
from .validation import check_int, check_positive, check_range

__all__ = ['ALWA', 'DWA', 'DTP', 'GuidedLoss', 'UncertaintyWeighting',
           'GradNorm', 'TDB', 'FAMO', 'RLW', 'GLS', 'IMTL_L', 'STCH',
           'BaseWeighting', 'ScalarizerWeighting', 'RULES', 'register_rule',
           'build_rule', 'check_int', 'check_positive', 'check_range']
