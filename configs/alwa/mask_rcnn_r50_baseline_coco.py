# Mask R-CNN R50-FPN on COCO 2017 with mmdet's L1 regression loss (Table 5).
_base_ = '../_base_/mask_rcnn_r50_coco.py'
