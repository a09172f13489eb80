# The demo detector trained with CAGrad (Liu et al. on all four RPN/RoI losses,
# as configs/balancers/faster_rcnn_r50_cagrad_voc.py: `python tools/train.py
# configs/demo/faster_rcnn_r18_cagrad_demo.py` trains it in minutes on a CPU
# (tools/demo.py generates the demo data). See docs/balancers.md, "Gradient
# aggregation".
_base_ = ['./faster_rcnn_r18_demo.py']

default_hooks = dict(
    cagrad=dict(
        type='LossWeightingHook',
        name='cagrad',
        rule=dict(
            type='CAGrad',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg'), c=0.4),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox')))
