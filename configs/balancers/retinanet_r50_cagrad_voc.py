# CAGrad (Liu et al., NeurIPS 2021), needs mmdet_alwa[cagrad]: gradient
# aggregation of the dense head's classification and regression losses at the
# neck's outputs (every FPN level), on RetinaNet R50 VOC0712; see
# docs/balancers.md, "Gradient aggregation".
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    cagrad=dict(
        type='LossWeightingHook',
        name='cagrad',
        rule=dict(type='CAGrad', c=0.4),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
