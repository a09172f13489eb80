# GLS, the geometric mean of the losses (Chennupati et al. 2019),
# on RetinaNet R50 VOC0712 (the dense head's classification and regression
# losses); an adapter over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    gls=dict(
        type='LossWeightingHook',
        name='gls',
        rule=dict(type='GLS'),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox')))
