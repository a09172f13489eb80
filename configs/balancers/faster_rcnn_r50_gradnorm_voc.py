# GradNorm (Chen et al. 2018) on Faster R-CNN R50 VOC0712; see
# docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(gradnorm=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    gradnorm=dict(
        type='LossWeightingHook',
        name='gradnorm',
        # alpha: asymmetry; lr: learning rate of the task weights
        rule=dict(type='GradNorm', alpha=1.5, lr=0.025),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # shared_layer=None: the last layer shared by the balanced heads
        signals=dict(grad_norm=dict(type='grad_norm', shared_layer=None))))
