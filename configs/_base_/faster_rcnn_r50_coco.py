# Faster R-CNN R50-FPN on COCO 2017 with mmdet's 1x schedule.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdet_alwa'], allow_failed_imports=False)
