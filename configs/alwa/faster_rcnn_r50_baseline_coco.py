# Faster R-CNN R50-FPN on COCO 2017 with mmdet's 1x schedule (no balancing).
_base_ = '../_base_/faster_rcnn_r50_coco.py'
