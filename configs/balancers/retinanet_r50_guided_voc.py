# Guided Loss (Chen et al.) on RetinaNet R50 VOC0712, one_stage form; see
# docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
guided_mode = 'one_stage'
guided_warmup = 100  # iterations averaged before the one-stage ratio freezes

custom_hooks = [
    dict(type='LossWeightingHook', name='guided',
         rule=dict(type='GuidedLoss', mode=guided_mode, warmup=guided_warmup),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox')),
]
