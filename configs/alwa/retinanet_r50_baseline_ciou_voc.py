# CIoU regression loss in the RetinaNet head (Table 2, CIoU): IoU losses
# compare decoded boxes; weight 1 (= lambda0 in the paper).
_base_ = './retinanet_r50_baseline_voc.py'

model = dict(
    bbox_head=dict(
        reg_decoded_bbox=True,
        loss_bbox=dict(type='CIoULoss', loss_weight=1.0)))
