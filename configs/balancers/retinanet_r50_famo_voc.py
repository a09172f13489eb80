# FAMO (Liu et al. NeurIPS 2023) with the next-iteration losses,
# on RetinaNet R50 VOC0712 (the dense head's classification and regression
# losses); an adapter over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    famo=dict(
        type='LossWeightingHook',
        name='famo',
        rule=dict(
            type='FAMO',
            lr=0.025, weight_decay=1e-3),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
