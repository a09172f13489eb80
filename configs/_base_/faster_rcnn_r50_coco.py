# Faster R-CNN R50-FPN on COCO 2017 with mmdet's 1x schedule.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    './default_runtime.py',
]
