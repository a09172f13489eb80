# Mask R-CNN R50-FPN on COCO 2017 + ALWA_1 on the RPN (Table 5), the hook of
# faster_rcnn_r50_alwa1_voc.py.
_base_ = './mask_rcnn_r50_baseline_coco.py'

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(type='ALWA', variant=1, interval=100, init_weight=1.0,
                  mode='faithful'),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
