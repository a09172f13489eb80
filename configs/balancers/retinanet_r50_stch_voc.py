# STCH, smooth Tchebycheff scalarization (Lin et al. ICML 2024),
# on RetinaNet R50 VOC0712 (the dense head's classification and regression
# losses); an adapter over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    stch=dict(
        type='LossWeightingHook',
        name='stch',
        rule=dict(
            type='STCH',
            mu=1.0),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
