# Dynamic R-CNN R50-FPN (Zhang et al., ECCV 2020) on VOC0712: the model part
# of mmdet's dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py on our Faster R-CNN
# VOC base. (mmdet keeps that part in the COCO config itself, and mmengine
# does not allow two bases with the same keys, so it is restated here.)
_base_ = './faster_rcnn_r50_voc.py'

model = dict(
    roi_head=dict(
        type='DynamicRoIHead',
        bbox_head=dict(
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rpn_proposal=dict(nms=dict(iou_threshold=0.85)),
        rcnn=dict(
            dynamic_rcnn=dict(
                iou_topk=75,
                beta_topk=10,
                update_iter_interval=100,
                initial_iou=0.4,
                initial_beta=1.0))),
    test_cfg=dict(rpn=dict(nms=dict(iou_threshold=0.85))))
