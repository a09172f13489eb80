# GradNorm (Chen et al. 2018) on RetinaNet R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
gradnorm_alpha = 1.5  # asymmetry
gradnorm_lr = 0.025  # learning rate of the task weights
shared_layer = None  # default: the last layer shared by the balanced heads

custom_hooks = [
    dict(type='LossWeightingHook', name='gradnorm',
         rule=dict(type='GradNorm', alpha=gradnorm_alpha, lr=gradnorm_lr),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox'),
         signals=dict(grad_norm=dict(type='grad_norm',
                                     shared_layer=shared_layer))),
]
