# ALWA_2 (std only) with the CIoU regression loss (Table 5).
_base_ = './faster_rcnn_r50_alwa1_ciou_coco.py'

default_hooks = dict(alwa=dict(rule=dict(variant=2)))
