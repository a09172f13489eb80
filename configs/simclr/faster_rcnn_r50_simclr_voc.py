# Pretrained vs scratch (paper 003), 3/3: Faster R-CNN R50-FPN on VOC0712
# from our SimCLR backbone (configs/simclr/simclr_r50_voc.py). Fine-tuned
# like the ImageNet variant (stage 1 frozen, BN statistics frozen).
_base_ = '../_base_/faster_rcnn_r50_voc.py'

# the SimCLR checkpoint (keys backbone.*), or a file written by
# tools/misc/export_backbone.py (then set simclr_prefix = None)
simclr_checkpoint = 'work_dirs/simclr_r50_voc/epoch_10.pth'
simclr_prefix = 'backbone.'

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=simclr_checkpoint,
                      prefix=simclr_prefix)))
