# ALWA_1 (retinanet_r50_alwa1_voc.py) with the SmoothL1 regression loss of
# retinanet_r50_baseline_smoothl1_voc.py.
_base_ = './retinanet_r50_alwa1_voc.py'

model = dict(
    bbox_head=dict(
        loss_bbox=dict(
            type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))
