_base_ = [
    './retinanet_r50_baseline_coco.py',
    './_base_/alwa1_dense.py',
]
