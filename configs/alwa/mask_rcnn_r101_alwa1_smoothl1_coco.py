# Mask R-CNN R101-FPN on COCO 2017, SmoothL1 loss in the RPN + ALWA_1
# (Table 5).
_base_ = './mask_rcnn_r50_alwa1_smoothl1_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
