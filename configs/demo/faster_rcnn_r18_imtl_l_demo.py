# The demo detector trained with IMTL-L on all four RPN/RoI losses, as
# configs/balancers/faster_rcnn_r50_imtl_l_voc.py: `python tools/train.py
# configs/demo/faster_rcnn_r18_imtl_l_demo.py` trains it in minutes on a CPU
# (tools/demo.py generates the demo data). See docs/balancers.md.
_base_ = ['./faster_rcnn_r18_demo.py']

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
