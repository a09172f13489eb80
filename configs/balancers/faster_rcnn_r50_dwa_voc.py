# DWA (Liu et al. 2019) on Faster R-CNN R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(dwa=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    dwa=dict(
        type='LossWeightingHook',
        name='dwa',
        # interval: iterations per window (the paper's "epoch")
        rule=dict(type='DWA', interval=100, temperature=2.0),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
