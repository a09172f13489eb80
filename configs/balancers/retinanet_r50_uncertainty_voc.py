# Uncertainty weighting (Kendall et al. 2018) on RetinaNet R50 VOC0712; the
# log-variances are trained by the main optimizer; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# The dense head's classification and regression losses.
default_hooks = dict(
    uncertainty=dict(
        type='LossWeightingHook',
        name='uncertainty',
        rule=dict(type='UncertaintyWeighting', init_log_var=0.0),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # no decay pulling the log-variances to 0
        param_group=dict(weight_decay=0.0)))
