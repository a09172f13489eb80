
from . import ntxent_loss  # noqa: F401
