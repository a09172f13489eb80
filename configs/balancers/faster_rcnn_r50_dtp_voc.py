# DTP (Guo et al. 2018) on Faster R-CNN R50 VOC0712; KPIs: accuracy of the
# sampled anchors (cls), mean IoU of the positive boxes (reg);
# see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# The RPN's losses, as ALWA's (Table 4 of the ALWA paper); a child config
# balances the RoI head instead with
#   default_hooks = dict(dtp=dict(head='roi_head.bbox_head'))
default_hooks = dict(
    dtp=dict(
        type='LossWeightingHook',
        name='dtp',
        # gamma: focusing parameter of the task-level focal term; alpha: EMA
        # factor of the new KPI
        rule=dict(type='DTP', gamma=1.0, alpha=0.1),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # accuracy over the RPN's sampled anchors
        signals=dict(kpi=dict(type='kpi', cls_metric='accuracy'))))
