_base_ = [
    './faster_rcnn_r101_baseline_smoothl1_voc.py',
    './_base_/alwa2_rpn.py',
]
