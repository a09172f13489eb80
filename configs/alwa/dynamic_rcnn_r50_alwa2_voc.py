# Dynamic R-CNN R50-FPN on VOC0712 + ALWA_2 on the RPN (Table 3).
_base_ = [
    './dynamic_rcnn_r50_baseline_voc.py',
    './_base_/alwa2_rpn.py',
]
