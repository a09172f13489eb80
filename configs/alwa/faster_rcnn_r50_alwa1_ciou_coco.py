# ALWA_1 (faster_rcnn_r50_alwa1_coco.py) with the CIoU regression loss of
# faster_rcnn_r50_baseline_ciou_coco.py (Table 5).
_base_ = './faster_rcnn_r50_alwa1_coco.py'

model = dict(
    rpn_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
