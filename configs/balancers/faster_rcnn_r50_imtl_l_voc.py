# IMTL-L (Liu et al. ICLR 2021), its scales trained by the main optimizer,
# on Faster R-CNN R50 VOC0712, weighting all four RPN/RoI losses; an adapter
# over TorchJD's scalarizer, see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

default_hooks = dict(
    imtl_l=dict(
        type='LossWeightingHook',
        name='imtl_l',
        rule=dict(
            type='IMTL_L',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg'),
            init_log_scale=0.0),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox'),
        # no decay pulling the log-scales to 0
        param_group=dict(weight_decay=0.0)))
