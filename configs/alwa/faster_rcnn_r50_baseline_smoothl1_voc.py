# SmoothL1 regression loss in the RPN (Table 2, SmoothL1; the RoI head keeps
# mmdet's L1 loss). beta as in mmdet's v1 configs, weight 1 (= lambda0).
_base_ = './faster_rcnn_r50_baseline_voc.py'

model = dict(
    rpn_head=dict(
        loss_bbox=dict(
            type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)))
