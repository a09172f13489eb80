# ALWA_1 (mask_rcnn_r50_alwa1_coco.py) with the SmoothL1 regression loss of
# mask_rcnn_r50_baseline_smoothl1_coco.py (Table 5).
_base_ = './mask_rcnn_r50_alwa1_coco.py'

model = dict(
    rpn_head=dict(
        loss_bbox=dict(
            type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)))
