# ALWA_2 (std) on the RPN. Yu et al. put ALWA into the RPN
# of two-stage detectors and into the head of one-stage ones; lambda0 = 1
# and C = 100 in all of its experiments. alwa_mode='multiplicative' does not
# oscillate (docs/alwa.md).
alwa_interval = 100
alwa_init_weight = 1.0
alwa_mode = 'faithful'

custom_hooks = [
    dict(
        type='LossWeightingHook',
        name='alwa',
        rule=dict(
            type='ALWA',
            variant=2,
            interval=alwa_interval,
            init_weight=alwa_init_weight,
            mode=alwa_mode),
        losses=dict(cls='rpn_head.loss_cls', reg='rpn_head.loss_bbox')),
]
