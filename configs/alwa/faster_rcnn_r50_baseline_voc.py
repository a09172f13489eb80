# faster_rcnn R50-FPN on VOC0712 with mmdet's L1 regression loss (Table 2, L1).
_base_ = '../_base_/faster_rcnn_r50_voc.py'
