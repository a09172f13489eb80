# DWA (Liu et al. 2019) on Faster R-CNN R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'
# Balanced losses: the RPN's, as ALWA's (Table 4 of the ALWA paper); set
# balanced_head = 'roi_head.bbox_head' to balance the RoI head instead.
balanced_head = 'rpn_head'
dwa_interval = 100  # iterations per window (the paper's "epoch")
dwa_temperature = 2.0

custom_hooks = [
    dict(type='LossWeightingHook', name='dwa',
         rule=dict(type='DWA', interval=dwa_interval,
                   temperature=dwa_temperature),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox')),
]
