# ALWA_1 (faster_rcnn_r50_alwa1_voc.py) with the CIoU regression loss of
# faster_rcnn_r50_baseline_ciou_voc.py.
_base_ = './faster_rcnn_r50_alwa1_voc.py'

model = dict(
    rpn_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
