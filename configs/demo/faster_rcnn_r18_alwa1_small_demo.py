# ALWA_1 on the RPN (as faster_rcnn_r18_alwa1_demo.py) on the small-object
# demo data (faster_rcnn_r18_small_demo.py); docs/alwa.md, "Small objects".
_base_ = ['./faster_rcnn_r18_small_demo.py']

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(type='ALWA', variant=1, interval=50, init_weight=1.0,
                  mode='faithful'),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
