# retinanet R50-FPN on VOC0712 with mmdet's L1 regression loss (Table 2, L1).
_base_ = '../_base_/retinanet_r50_voc.py'
