_base_ = './faster_rcnn_r50_alwa1_smoothl1_voc.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
