# Mask R-CNN R50-FPN on COCO 2017, SmoothL1 loss in the RPN (Table 5; the RoI
# head keeps mmdet's L1 loss), as
# configs/alwa/faster_rcnn_r50_baseline_smoothl1_voc.py.
_base_ = './mask_rcnn_r50_baseline_coco.py'

model = dict(
    rpn_head=dict(
        loss_bbox=dict(
            type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)))
