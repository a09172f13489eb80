
from . import simclr  # noqa: F401
