"""mmdet_alwa: automatic loss balancing for MMDetection 3.x.

Importing the package registers its hooks, losses, heads, transforms,
datasets and metrics into mmdet's registries (``custom_imports=dict(imports=['mmdet_alwa'])``).
Without mmdet installed only the pure-torch rules of
:mod:`mmdet_alwa.weighting` are available.
"""
from . import weighting  # noqa: F401  (pure torch)
from .version import __version__

try:
    import mmdet  # noqa: F401
except ImportError:  # the balancing rules work without mmdet
    pass
else:
    from . import datasets, engine, evaluation, models, utils  # noqa: F401

__all__ = ['__version__']
