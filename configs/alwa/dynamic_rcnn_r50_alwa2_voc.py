# Dynamic R-CNN R50-FPN on VOC0712 + ALWA_2 (std only) on the RPN (Table 3).
_base_ = './dynamic_rcnn_r50_alwa1_voc.py'

default_hooks = dict(alwa=dict(rule=dict(variant=2)))
