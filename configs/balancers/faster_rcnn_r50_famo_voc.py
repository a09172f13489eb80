# FAMO (Liu et al. NeurIPS 2023) with the next-iteration losses,
# on Faster R-CNN R50 VOC0712, weighting all four RPN/RoI losses; an adapter
# over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    famo=dict(
        type='LossWeightingHook',
        name='famo',
        rule=dict(
            type='FAMO',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg'),
            lr=0.025, weight_decay=1e-3),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox')))
