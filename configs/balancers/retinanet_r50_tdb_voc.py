# Task-level dynamic balancing (TDB, paper 004 Eq. 10-16) on RetinaNet R50
# VOC0712; n_j = samples each loss is computed over; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# The dense head's classification and regression losses.
default_hooks = dict(
    tdb=dict(
        type='LossWeightingHook',
        name='tdb',
        # theta: restoring force (the paper's best value); lr: learning rate
        # of the task weights
        rule=dict(type='TDB', theta=1.0, lr=0.025),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # shared_layer=None: the last layer shared by the balanced heads
        signals=dict(grad_norm=dict(type='grad_norm', shared_layer=None))))
