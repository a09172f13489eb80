# Guided Loss (Chen et al.), rpn form, on Libra R-CNN R50 VOC0712 (Table 4 of
# the ALWA paper, Libra R-CNN column: "nan" there); see docs/balancers.md.
_base_ = '../alwa/libra_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    guided=dict(
        type='LossWeightingHook',
        name='guided',
        rule=dict(type='GuidedLoss', mode='rpn', warmup=100),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
