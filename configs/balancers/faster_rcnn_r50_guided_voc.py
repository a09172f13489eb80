# Guided Loss (Chen et al.) on Faster R-CNN R50 VOC0712, rpn form; see
# docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'
# Balanced losses: the RPN's, as ALWA's (Table 4 of the ALWA paper); set
# balanced_head = 'roi_head.bbox_head' to balance the RoI head instead.
balanced_head = 'rpn_head'
guided_mode = 'rpn'
guided_warmup = 100  # iterations averaged before the one-stage ratio freezes

custom_hooks = [
    dict(type='LossWeightingHook', name='guided',
         rule=dict(type='GuidedLoss', mode=guided_mode, warmup=guided_warmup),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox')),
]
