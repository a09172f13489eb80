# Faster R-CNN R50-FPN on COCO 2017, CIoU loss in the RPN (Table 5; the RoI head
# keeps mmdet's L1 loss), as configs/alwa/faster_rcnn_r50_baseline_ciou_voc.py.
_base_ = './faster_rcnn_r50_baseline_coco.py'

model = dict(
    rpn_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
