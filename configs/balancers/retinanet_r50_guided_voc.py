# Guided Loss (Chen et al.) on RetinaNet R50 VOC0712, one_stage form; see
# docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# The dense head's classification and regression losses.
default_hooks = dict(
    guided=dict(
        type='LossWeightingHook',
        name='guided',
        # warmup: iterations averaged before the one-stage ratio freezes
        rule=dict(type='GuidedLoss', mode='one_stage', warmup=100),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
