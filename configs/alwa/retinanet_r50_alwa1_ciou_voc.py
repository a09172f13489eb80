# ALWA_1 (retinanet_r50_alwa1_voc.py) with the CIoU regression loss of
# retinanet_r50_baseline_ciou_voc.py.
_base_ = './retinanet_r50_alwa1_voc.py'

model = dict(
    bbox_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
