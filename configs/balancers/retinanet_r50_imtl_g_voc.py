# IMTL-G (Liu et al., ICLR 2021): gradient aggregation of the dense head's
# classification and regression losses at the neck's outputs (every FPN level),
# on RetinaNet R50 VOC0712; see docs/balancers.md, "Gradient aggregation".
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    imtl_g=dict(
        type='LossWeightingHook',
        name='imtl_g',
        rule=dict(type='IMTL_G'),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
