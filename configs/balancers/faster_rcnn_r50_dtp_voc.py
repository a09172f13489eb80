# DTP (Guo et al. 2018) on Faster R-CNN R50 VOC0712; KPIs: accuracy of the sampled
# anchors (cls), mean IoU of the positive boxes (reg); see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'
# Balanced losses: the RPN's, as ALWA's (Table 4 of the ALWA paper); set
# balanced_head = 'roi_head.bbox_head' to balance the RoI head instead.
balanced_head = 'rpn_head'
dtp_gamma = 1.0  # focusing parameter of the task-level focal term
dtp_alpha = 0.1  # EMA factor of the new KPI
# accuracy over the RPN's sampled anchors
dtp_cls_metric = 'accuracy'

custom_hooks = [
    dict(type='LossWeightingHook', name='dtp',
         rule=dict(type='DTP', gamma=dtp_gamma, alpha=dtp_alpha),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox'),
         signals=dict(kpi=dict(type='kpi', cls_metric=dtp_cls_metric))),
]
