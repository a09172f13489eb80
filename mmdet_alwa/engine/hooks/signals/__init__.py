"""Signal providers: per-task inputs of a rule other than its losses.

The protocol and ``register_signal_provider``/``build_signal_provider`` are
in :mod:`.base` (the registry, ``SIGNAL_PROVIDERS``, is an mmengine
``Registry`` in :mod:`mmdet_alwa.registry`), the reading of mmdet loss calls
in :mod:`.loss_calls`, one provider per file (``kpi``, ``num_samples``,
``grad_norm``, ``loss_after_step``); the measurements themselves are pure
functions in :mod:`.measures`.
"""
from .base import (SIGNAL_PROVIDERS, SignalProvider, build_signal_provider,
                   register_signal_provider)
from .grad_norm import GradNormProvider
from .kpi import KPIProvider
from .loss_after_step import LossAfterStepProvider
from .loss_inputs import LossInputProvider
from .num_samples import NumSamplesProvider

__all__ = ['SignalProvider', 'SIGNAL_PROVIDERS', 'register_signal_provider',
           'build_signal_provider', 'LossInputProvider', 'KPIProvider',
           'NumSamplesProvider', 'GradNormProvider', 'LossAfterStepProvider']
