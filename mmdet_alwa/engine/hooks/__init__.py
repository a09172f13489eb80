
from .nonfinite_guard_hook import NonFiniteGuardHook  # noqa: F401
from .loss_weighting_hook import LossWeightingHook  # noqa: F401
from . import signals  # noqa: F401  (registers the signal providers)
from .filtered_annotations_hook import FilteredAnnotationsHook  # noqa: F401
from .progress_hook import RichProgressHook  # noqa: F401
