# RLW, random loss weighting (Lin et al. TMLR 2022),
# on RetinaNet R50 VOC0712 (the dense head's classification and regression
# losses); an adapter over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    rlw=dict(
        type='LossWeightingHook',
        name='rlw',
        rule=dict(
            type='RLW',
            seed=0),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
