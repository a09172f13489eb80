
from . import ntxent_loss  # noqa: F401
from . import triplet_loss  # noqa: F401
