_base_ = [
    './retinanet_r50_baseline_ciou_voc.py',
    './_base_/alwa1_dense.py',
]
