# The demo detector trained with ALWA_1 on the RPN (the paper's two-stage
# setting, as configs/alwa/faster_rcnn_r50_alwa1_voc.py), the default of
# `make demo`. The demo's run is a few hundred iterations, so the window C is
# shorter than the paper's 100 to give the weight a dozen updates.
_base_ = ['./faster_rcnn_r18_demo.py']

default_hooks = dict(
    alwa=dict(
        type='LossWeightingHook',
        name='alwa',
        # mode='faithful': Algorithm 1; 'multiplicative' does not oscillate
        rule=dict(type='ALWA', variant=1, interval=50, init_weight=1.0,
                  mode='faithful'),
        head='rpn_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
