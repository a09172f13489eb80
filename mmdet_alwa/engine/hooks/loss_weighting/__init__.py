"""The mechanisms of :class:`~mmdet_alwa.engine.hooks.LossWeightingHook`,
one per module: loss taps (:mod:`.taps`), the rule's param group
(:mod:`.param_group`), the finite all-reduce (:mod:`.reduce`), logging
(:mod:`.scalars`) and checkpointed state (:mod:`.state`). Signal providers
live in :mod:`mmdet_alwa.engine.hooks.signals`."""
from .param_group import (add_rule_param_group, extend_schedulers,
                          find_param_group)
from .reduce import Reduced, finite_mean, reduce_finite_mean
from .scalars import RuleLog
from .state import CHECKPOINT_KEY, RuleCheckpoint
from .taps import LossTaps, loss_module_names

__all__ = ['LossTaps', 'loss_module_names', 'add_rule_param_group',
           'extend_schedulers', 'find_param_group', 'Reduced',
           'finite_mean', 'reduce_finite_mean', 'RuleLog', 'CHECKPOINT_KEY',
           'RuleCheckpoint']
