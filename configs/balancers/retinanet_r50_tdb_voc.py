# Task-level dynamic balancing (TDB, paper 004 Eq. 10-16) on RetinaNet R50
# VOC0712; n_j = samples each loss is computed over; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
tdb_theta = 1.0  # restoring force (the paper's best value)
tdb_lr = 0.025  # learning rate of the task weights
shared_layer = None  # default: the last layer shared by the balanced heads

custom_hooks = [
    dict(type='LossWeightingHook', name='tdb',
         rule=dict(type='TDB', theta=tdb_theta, lr=tdb_lr),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox'),
         signals=dict(grad_norm=dict(type='grad_norm',
                                     shared_layer=shared_layer))),
]
