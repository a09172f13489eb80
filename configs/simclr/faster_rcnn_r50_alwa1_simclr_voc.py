# Faster R-CNN R50-FPN + ALWA_1 on the RPN (configs/alwa/), its backbone
# initialised from our SimCLR pretraining (configs/simclr/simclr_r50_voc.py).
_base_ = '../alwa/faster_rcnn_r50_alwa1_voc.py'

# the SimCLR checkpoint (keys backbone.*), or a file written by
# tools/misc/export_backbone.py (then set simclr_prefix = None)
simclr_checkpoint = 'work_dirs/simclr_r50_voc/epoch_10.pth'
simclr_prefix = 'backbone.'

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=simclr_checkpoint,
                      prefix=simclr_prefix)))
