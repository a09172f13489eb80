"""mmdet_alwa: automatic loss balancing for MMDetection 3.x.

Importing the package registers its hooks, losses, heads, transforms and
datasets into mmdet's registries (``custom_imports=dict(imports=['mmdet_alwa'])``).
"""
from . import compat  # noqa: F401  (must run before any checkpoint is loaded)
from . import datasets, engine, models, utils, weighting  # noqa: F401
from .version import __version__

__all__ = ['__version__']
