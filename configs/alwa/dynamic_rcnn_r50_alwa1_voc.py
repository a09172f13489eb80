# Dynamic R-CNN R50-FPN on VOC0712 + ALWA_1 on the RPN (Table 3), the hook of
# faster_rcnn_r50_alwa1_voc.py.
_base_ = './dynamic_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(type='ALWA', variant=1, interval=100, init_weight=1.0,
                  mode='faithful'),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
