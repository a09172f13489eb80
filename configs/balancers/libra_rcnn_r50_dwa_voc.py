# DWA (Liu et al. 2019) on the RPN of Libra R-CNN R50 VOC0712 (Table 4 of the
# ALWA paper, Libra R-CNN column); see docs/balancers.md.
_base_ = '../alwa/libra_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    dwa=dict(
        type='LossWeightingHook',
        name='dwa',
        rule=dict(type='DWA', interval=100, temperature=2.0),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
