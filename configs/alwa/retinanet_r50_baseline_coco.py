# RetinaNet R50-FPN on COCO 2017 with mmdet's 1x schedule (no balancing).
_base_ = '../_base_/retinanet_r50_coco.py'
