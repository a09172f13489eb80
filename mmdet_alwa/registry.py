"""Registry nodes of the ``mmdet_alwa`` scope: one child of each of mmdet's,
and the registry of the signal providers.

Our modules register into mmdet's own registries (``mmdet.registry``). The
empty children are needed by ``mmdet_alwa::`` configs, i.e. configs read by
package scope (``_base_ = 'mmdet_alwa::alwa/...'``, ``mim train
mmdet_alwa ...``): mmengine tags the dicts of such a config with
``_scope_='mmdet_alwa'`` and, to build them, imports ``mmdet_alwa.registry``
and looks the scope up in the registry tree; without a node of that scope
the build fails. A type is then found in the child (nothing), its mmdet
parent (our modules and mmdet's) or mmengine's root. ``locations`` are the
parent's plus our package, so that the lookup imports what registers the
modules.

``SIGNAL_PROVIDERS`` holds the signal providers of
:class:`~mmdet_alwa.engine.hooks.LossWeightingHook` (``kpi``,
``num_samples``, ``grad_norm``; :mod:`mmdet_alwa.engine.hooks.signals`), a
child of our ``TASK_UTILS`` node as mmdet's own registries are children of
mmengine's. The hook builds a provider with
:func:`~mmdet_alwa.engine.hooks.signals.build_signal_provider`, which looks
the name up in this registry only (not in its parents).
"""
import mmdet.registry as mmdet_registry
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
    'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS',
    'SIGNAL_PROVIDERS'
]


def _child(parent: Registry) -> Registry:
    return Registry(parent.name, parent=parent, scope='mmdet_alwa',
                    locations=[*parent._locations, 'mmdet_alwa'])


RUNNERS = _child(mmdet_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mmdet_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child(mmdet_registry.LOOPS)
HOOKS = _child(mmdet_registry.HOOKS)
DATASETS = _child(mmdet_registry.DATASETS)
DATA_SAMPLERS = _child(mmdet_registry.DATA_SAMPLERS)
TRANSFORMS = _child(mmdet_registry.TRANSFORMS)
MODELS = _child(mmdet_registry.MODELS)
MODEL_WRAPPERS = _child(mmdet_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mmdet_registry.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(mmdet_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mmdet_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(mmdet_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mmdet_registry.PARAM_SCHEDULERS)
METRICS = _child(mmdet_registry.METRICS)
EVALUATOR = _child(mmdet_registry.EVALUATOR)
TASK_UTILS = _child(mmdet_registry.TASK_UTILS)
VISUALIZERS = _child(mmdet_registry.VISUALIZERS)
VISBACKENDS = _child(mmdet_registry.VISBACKENDS)
LOG_PROCESSORS = _child(mmdet_registry.LOG_PROCESSORS)

SIGNAL_PROVIDERS = Registry(
    'signal provider', parent=TASK_UTILS, scope='mmdet_alwa',
    locations=['mmdet_alwa.engine.hooks.signals'])
