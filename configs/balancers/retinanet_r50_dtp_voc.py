# DTP (Guo et al. 2018) on RetinaNet R50 VOC0712; KPIs: accuracy of the sampled
# anchors (cls), mean IoU of the positive boxes (reg); see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# The dense head's classification and regression losses.
default_hooks = dict(
    dtp=dict(
        type='LossWeightingHook',
        name='dtp',
        # gamma: focusing parameter of the task-level focal term; alpha: EMA
        # factor of the new KPI
        rule=dict(type='DTP', gamma=1.0, alpha=0.1),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # mean of fg/bg accuracy: the plain accuracy of all anchors is ~0.98
        # (mostly background) and would switch the classification loss off
        signals=dict(kpi=dict(type='kpi', cls_metric='balanced'))))
