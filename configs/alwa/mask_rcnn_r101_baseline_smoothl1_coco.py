# Mask R-CNN R101-FPN on COCO 2017, SmoothL1 loss in the RPN (Table 5).
_base_ = './mask_rcnn_r50_baseline_smoothl1_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
