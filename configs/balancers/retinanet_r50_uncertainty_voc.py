# Uncertainty weighting (Kendall et al. 2018) on RetinaNet R50 VOC0712; the
# log-variances are trained by the main optimizer; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
init_log_var = 0.0
log_var_weight_decay = 0.0  # no decay pulling the log-variances to 0

custom_hooks = [
    dict(type='LossWeightingHook', name='uncertainty',
         rule=dict(type='UncertaintyWeighting', init_log_var=init_log_var),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox'),
         param_group=dict(weight_decay=log_var_weight_decay)),
]
