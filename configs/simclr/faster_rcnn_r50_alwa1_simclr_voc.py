# Faster R-CNN R50-FPN + ALWA_1 on the RPN (configs/alwa/), its backbone
# initialised from our SimCLR pretraining (configs/simclr/simclr_r50_voc.py).
_base_ = '../alwa/faster_rcnn_r50_alwa1_voc.py'

# checkpoint: the SimCLR checkpoint (keys backbone.*), or a file written by
# tools/misc/export_backbone.py (then prefix=None); a child config sets it with
#   model = dict(backbone=dict(init_cfg=dict(checkpoint='my_simclr.pth')))
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/simclr_r50_voc/epoch_10.pth',
                      prefix='backbone.')))
