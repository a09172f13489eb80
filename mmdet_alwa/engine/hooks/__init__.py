
from .loss_weighting_hook import LossWeightingHook  # noqa: F401
from . import balancer_signals  # noqa: F401
