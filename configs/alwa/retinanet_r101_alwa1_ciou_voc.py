_base_ = [
    './retinanet_r101_baseline_ciou_voc.py',
    './_base_/alwa1_dense.py',
]
