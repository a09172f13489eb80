
from . import ntxent_loss  # noqa: F401
from . import triplet_loss  # noqa: F401
from . import sample_level_loss  # noqa: F401
