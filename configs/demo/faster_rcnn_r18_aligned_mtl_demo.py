# The demo detector trained with Aligned-MTL (Senushkin et al. on all four
# RPN/RoI losses, as configs/balancers/faster_rcnn_r50_aligned_mtl_voc.py:
# `python tools/train.py configs/demo/faster_rcnn_r18_aligned_mtl_demo.py`
# trains it in minutes on a CPU (tools/demo.py generates the demo data). See
# docs/balancers.md, "Gradient aggregation".
_base_ = ['./faster_rcnn_r18_demo.py']

default_hooks = dict(
    aligned_mtl=dict(
        type='LossWeightingHook',
        name='aligned_mtl',
        rule=dict(
            type='AlignedMTL',
            tasks=('rpn_cls', 'rpn_reg', 'roi_cls', 'roi_reg')),
        losses=dict(
            rpn_cls='rpn_head.loss_cls', rpn_reg='rpn_head.loss_bbox',
            roi_cls='roi_head.bbox_head.loss_cls',
            roi_reg='roi_head.bbox_head.loss_bbox')))
