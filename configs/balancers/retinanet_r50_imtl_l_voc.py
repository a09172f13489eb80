# IMTL-L (Liu et al. ICLR 2021), its scales trained by the main optimizer,
# on RetinaNet R50 VOC0712 (the dense head's classification and regression
# losses); an adapter over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

default_hooks = dict(
    imtl_l=dict(
        type='LossWeightingHook',
        name='imtl_l',
        rule=dict(
            type='IMTL_L',
            init_log_scale=0.0),
        head='bbox_head',
        losses=dict(cls='loss_cls', reg='loss_bbox'),
        # no decay pulling the log-scales to 0
        param_group=dict(weight_decay=0.0)))
