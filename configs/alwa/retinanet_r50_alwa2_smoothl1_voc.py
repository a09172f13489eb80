_base_ = [
    './retinanet_r50_baseline_smoothl1_voc.py',
    './_base_/alwa2_dense.py',
]
