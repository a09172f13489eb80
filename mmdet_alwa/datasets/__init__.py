from . import transforms  # noqa: F401
from . import unlabeled  # noqa: F401
from .prepare import prepare_datasets

__all__ = ['prepare_datasets']
