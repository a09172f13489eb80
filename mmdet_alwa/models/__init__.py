from . import losses, roi_heads, selfsup  # noqa: F401
