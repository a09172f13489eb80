# MATL in the RoI head together with ALWA_1 on the RPN's cls/reg losses
# (where Yu et al. put ALWA in two-stage detectors). MATL's knobs are fields
# of model.roi_head (./faster_rcnn_r50_matl_voc.py); ALWA's, as in
# ../alwa/faster_rcnn_r50_alwa1_voc.py, e.g.
#   default_hooks = dict(alwa=dict(rule=dict(interval=50)))
_base_ = './faster_rcnn_r50_matl_voc.py'

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(type='ALWA', variant=1, interval=100, init_weight=1.0,
                  mode='faithful'),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
