# STCH, smooth Tchebycheff scalarization (Lin et al. ICML 2024),
# on Faster R-CNN R50 VOC0712, weighting all four RPN/RoI losses; an adapter
# over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    stch=dict(
        type='LossWeightingHook',
        name='stch',
        rule=dict(
            type='STCH',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg'),
            mu=1.0),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox')))
