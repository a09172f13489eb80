
from .loss_weighting_hook import LossWeightingHook  # noqa: F401
