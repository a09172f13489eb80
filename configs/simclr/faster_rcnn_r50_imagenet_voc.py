# Pretrained vs scratch (paper 003), 2/3: Faster R-CNN R50-FPN on VOC0712
# from ImageNet weights (mmdet's default; needs torchvision) or from a local
# torchvision-format ResNet-50 file.
_base_ = '../_base_/faster_rcnn_r50_voc.py'

# a local file: model = dict(backbone=dict(init_cfg=dict(checkpoint=PATH)))
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet50')))
