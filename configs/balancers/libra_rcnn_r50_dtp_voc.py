# DTP (Guo et al. 2018) on the RPN of Libra R-CNN R50 VOC0712 (Table 4 of the
# ALWA paper, Libra R-CNN column); KPIs: accuracy of the sampled anchors
# (cls), mean IoU of the positive boxes (reg); see docs/balancers.md.
_base_ = '../alwa/libra_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    dtp=dict(
        type='LossWeightingHook',
        name='dtp',
        rule=dict(type='DTP', gamma=1.0, alpha=0.1),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        signals=dict(kpi=dict(type='kpi', cls_metric='accuracy'))))
