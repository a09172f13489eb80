# Guided Loss (Chen et al.) on Faster R-CNN R50 VOC0712, rpn form; see
# docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(guided=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    guided=dict(
        type='LossWeightingHook',
        name='guided',
        # warmup: iterations averaged before the one-stage ratio freezes
        rule=dict(type='GuidedLoss', mode='rpn', warmup=100),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
