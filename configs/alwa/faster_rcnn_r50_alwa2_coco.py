_base_ = [
    './faster_rcnn_r50_baseline_coco.py',
    './_base_/alwa2_rpn.py',
]
