_base_ = [
    './retinanet_r50_baseline_voc.py',
    './_base_/alwa2_dense.py',
]
