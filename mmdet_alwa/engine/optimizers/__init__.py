
from .nonfinite_guard import *  # noqa: F401,F403
