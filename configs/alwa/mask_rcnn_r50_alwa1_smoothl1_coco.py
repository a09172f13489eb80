_base_ = [
    './mask_rcnn_r50_baseline_smoothl1_coco.py',
    './_base_/alwa1_rpn.py',
]
