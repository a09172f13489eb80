# Pretrained vs scratch (paper 003), 3/3: Faster R-CNN R50-FPN on VOC0712
# from our SimCLR backbone (configs/simclr/simclr_r50_voc.py). Fine-tuned
# like the ImageNet variant (stage 1 frozen, BN statistics frozen).
_base_ = '../_base_/faster_rcnn_r50_voc.py'

# checkpoint: the SimCLR checkpoint (keys backbone.*), or a file written by
# tools/misc/export_backbone.py (then prefix=None); a child config sets it with
#   model = dict(backbone=dict(init_cfg=dict(checkpoint='my_simclr.pth')))
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/simclr_r50_voc/epoch_10.pth',
                      prefix='backbone.')))
