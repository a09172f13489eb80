# IMTL-G (Liu et al., ICLR 2021): gradient aggregation of all four RPN/RoI
# losses at the neck's outputs (every FPN level), on Faster R-CNN R50 VOC0712;
# the weights are TorchJD's Gramian weighting, see docs/balancers.md, "Gradient
# aggregation". A new Gramian every iteration (rule=dict(interval=2) halves the
# cost).
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    imtl_g=dict(
        type='LossWeightingHook',
        name='imtl_g',
        rule=dict(
            type='IMTL_G',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg')),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox')))
