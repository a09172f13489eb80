# Task-level dynamic balancing (TDB, paper 004 Eq. 10-16) on Faster R-CNN R50
# VOC0712; n_j = samples each loss is computed over; see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(tdb=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    tdb=dict(
        type='LossWeightingHook',
        name='tdb',
        # theta: restoring force (the paper's best value); lr: learning rate
        # of the task weights
        rule=dict(type='TDB', theta=1.0, lr=0.025),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # shared_layer=None: the last layer shared by the balanced heads
        signals=dict(grad_norm=dict(type='grad_norm', shared_layer=None))))
