
from . import triplet_roi_head  # noqa: F401
