# Mask R-CNN R101-FPN on COCO 2017, SmoothL1 loss in the RPN + ALWA_2
# (Table 5).
_base_ = './mask_rcnn_r101_alwa1_smoothl1_coco.py'

default_hooks = dict(alwa=dict(rule=dict(variant=2)))
