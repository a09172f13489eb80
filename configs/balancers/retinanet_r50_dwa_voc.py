# DWA (Liu et al. 2019) on RetinaNet R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# The dense head's classification and regression losses.
default_hooks = dict(
    dwa=dict(
        type='LossWeightingHook',
        name='dwa',
        # interval: iterations per window (the paper's "epoch")
        rule=dict(type='DWA', interval=100, temperature=2.0),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
