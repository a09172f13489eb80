from .buffer_snapshot import BufferSnapshot  # noqa: F401
from .nonfinite_guard import *  # noqa: F401,F403
