# Dynamic R-CNN R50-FPN on VOC0712 (Table 3 of the ALWA paper, "Initial").
_base_ = '../_base_/dynamic_rcnn_r50_voc.py'
