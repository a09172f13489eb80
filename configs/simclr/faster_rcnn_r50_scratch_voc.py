# Pretrained vs scratch (Nguyễn's lab report), 1/3: Faster R-CNN R50-FPN on
# VOC0712 with a randomly initialised backbone. Every stage trains and BN
# statistics are learned (frozen random stages or frozen random BN statistics
# would cripple it); everything else equals the ImageNet and SimCLR variants.
_base_ = '../_base_/faster_rcnn_r50_voc.py'

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None))
