_base_ = './retinanet_r50_alwa2_smoothl1_voc.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
