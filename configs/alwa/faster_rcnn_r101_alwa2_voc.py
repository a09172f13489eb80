_base_ = [
    './faster_rcnn_r101_baseline_voc.py',
    './_base_/alwa2_rpn.py',
]
