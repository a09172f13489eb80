# CIoU regression loss in the RPN (Table 2, CIoU; the RoI head keeps mmdet's
# L1 loss). IoU losses compare decoded boxes; weight 1 (= lambda0).
_base_ = './faster_rcnn_r50_baseline_voc.py'

model = dict(
    rpn_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
