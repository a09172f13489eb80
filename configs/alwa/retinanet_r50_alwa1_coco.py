# ALWA_1 (mean + std) on the dense head's cls/reg losses. Yu et al. put ALWA
# into the RPN of two-stage detectors and into the head of one-stage ones;
# lambda0 = 1 and C = 100 in all of its experiments. mode='multiplicative'
# does not oscillate (docs/alwa.md). A child config changes one knob with one
# line, e.g. default_hooks = dict(alwa=dict(rule=dict(interval=50)))
_base_ = './retinanet_r50_baseline_coco.py'

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(type='ALWA', variant=1, interval=100, init_weight=1.0,
                  mode='faithful'),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
