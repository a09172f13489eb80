# DTP (Guo et al. 2018) on RetinaNet R50 VOC0712; KPIs: accuracy of the sampled
# anchors (cls), mean IoU of the positive boxes (reg); see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
dtp_gamma = 1.0  # focusing parameter of the task-level focal term
dtp_alpha = 0.1  # EMA factor of the new KPI
# mean of fg/bg accuracy: the plain accuracy of all anchors is ~0.98
# (mostly background) and would switch the classification loss off
dtp_cls_metric = 'balanced'

custom_hooks = [
    dict(type='LossWeightingHook', name='dtp',
         rule=dict(type='DTP', gamma=dtp_gamma, alpha=dtp_alpha),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox'),
         signals=dict(kpi=dict(type='kpi', cls_metric=dtp_cls_metric))),
]
