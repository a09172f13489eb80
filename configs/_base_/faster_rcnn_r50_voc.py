# Faster R-CNN R50-FPN on VOC0712 with mmdet's VOC schedule, the base of every
# two-stage VOC config of mmdet_alwa.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './datasets/voc0712.py',
    './schedules/voc_1x.py',
    './default_runtime.py',
]
model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
# skip the update of a NaN/inf loss and stop with a clear error ('raise'), or
# skip and go on ('skip'); see docs/troubleshooting_nan.md
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper', nonfinite_policy='raise')
