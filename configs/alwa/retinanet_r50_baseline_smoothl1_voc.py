# SmoothL1 regression loss in the RetinaNet head (Table 2, SmoothL1);
# beta as in mmdet's v1 configs, weight 1 (= lambda0 in the paper).
_base_ = './retinanet_r50_baseline_voc.py'

model = dict(
    bbox_head=dict(
        loss_bbox=dict(
            type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))
