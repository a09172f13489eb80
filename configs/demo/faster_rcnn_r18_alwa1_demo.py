# The demo detector trained with ALWA_1 on the RPN (the paper's two-stage
# setting, configs/alwa/_base_/alwa1_rpn.py), the default of `make demo`.
# The demo's run is a few hundred iterations, so the window C is shorter than
# the paper's 100 to give the weight a dozen updates.
_base_ = ['./faster_rcnn_r18_demo.py']

alwa_interval = 50
alwa_init_weight = 1.0
alwa_mode = 'faithful'  # Algorithm 1; 'multiplicative' does not oscillate

custom_hooks = [
    dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(
            type='ALWA',
            variant=1,
            interval=alwa_interval,
            init_weight=alwa_init_weight,
            mode=alwa_mode),
        losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox')),
]
