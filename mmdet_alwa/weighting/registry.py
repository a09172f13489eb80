"""The table of balancing rules: ``RULES`` maps a rule's class name to it.

This module imports nothing, so every rule module can register into it
whatever was imported before (``@register_rule`` above the class), and
:func:`build_rule` finds a rule by the ``type`` of its config dict.
"""

#: rule class name -> rule class
RULES = {}


def register_rule(cls: type) -> type:
    """Class decorator: make a rule buildable by its class name.

    Raises:
        ValueError: another class of that name is registered already.
    """
    name = cls.__name__
    if RULES.get(name, cls) is not cls:
        raise ValueError(
            f'a weighting rule named {name!r} is registered already '
            f'({RULES[name].__module__}.{name}); name the new one differently')
    RULES[name] = cls
    return cls


def build_rule(cfg) -> object:
    """Build a rule from ``dict(type=name, **kwargs)``."""
    cfg = dict(cfg)
    name = cfg.pop('type', None)
    if name not in RULES:
        raise ValueError(f'unknown weighting rule {name!r}; '
                         f'known rules: {sorted(RULES)}')
    return RULES[name](**cfg)
