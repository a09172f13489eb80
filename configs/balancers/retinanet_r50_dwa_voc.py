# DWA (Liu et al. 2019) on RetinaNet R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'
# Balanced losses: the dense head's classification and regression losses.
balanced_head = 'bbox_head'
dwa_interval = 100  # iterations per window (the paper's "epoch")
dwa_temperature = 2.0

custom_hooks = [
    dict(type='LossWeightingHook', name='dwa',
         rule=dict(type='DWA', interval=dwa_interval,
                   temperature=dwa_temperature),
         losses=dict(cls=f'{balanced_head}.loss_cls',
                     reg=f'{balanced_head}.loss_bbox')),
]
