# Uncertainty weighting (Kendall et al. 2018) on Faster R-CNN R50 VOC0712; the
# log-variances are trained by the main optimizer; see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(uncertainty=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    uncertainty=dict(
        type='LossWeightingHook',
        name='uncertainty',
        rule=dict(type='UncertaintyWeighting', init_log_var=0.0),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # no decay pulling the log-variances to 0
        param_group=dict(weight_decay=0.0)))
