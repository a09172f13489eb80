# MGDA-UB (Sener & Koltun, NeurIPS 2018): gradient aggregation of the dense
# head's classification and regression losses at the neck's outputs (every FPN
# level), on RetinaNet R50 VOC0712; see docs/balancers.md, "Gradient
# aggregation".
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    mgda=dict(
        type='LossWeightingHook',
        name='mgda',
        rule=dict(type='MGDA'),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
