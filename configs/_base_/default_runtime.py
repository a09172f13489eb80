# mmdet's runtime plus what every mmdet_alwa config needs: our modules, and
# TensorBoard next to the text log (loss weights are logged as scalars).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmdet_alwa'], allow_failed_imports=False)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
# NonFiniteGuardHook names the loss terms and images of a NaN/inf iteration
# (with the NonFiniteGuardOptimWrapper of the model configs);
# FilteredAnnotationsHook reports CountingFilterAnnotations' count. In
# default_hooks (a dict that children merge, as our balancing hooks).
default_hooks = dict(
    nonfinite_guard=dict(type='NonFiniteGuardHook'),
    filtered_annotations=dict(type='FilteredAnnotationsHook', interval=50))
