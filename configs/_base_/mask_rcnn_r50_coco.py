# Mask R-CNN R50-FPN on COCO 2017 instances with mmdet's 1x schedule.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    './default_runtime.py',
]
# skip the update of a NaN/inf loss and stop with a clear error ('raise'), or
# skip and go on ('skip'); see docs/troubleshooting_nan.md
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper', nonfinite_policy='raise')
