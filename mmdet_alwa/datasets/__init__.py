from . import transforms  # noqa: F401
from . import unlabeled  # noqa: F401
