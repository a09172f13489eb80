# Sample-level dynamic balancing (paper 004 Eq. 9, -(1-p)^beta log p) on the
# classification losses of Faster R-CNN R50 VOC0712; see docs/balancers.md.
_base_ = '../alwa/faster_rcnn_r50_baseline_voc.py'

# beta (mmdet's gamma) = 2: the sample-level focusing parameter
model = dict(
    # RPN objectness (sigmoid): mmdet's FocalLoss without alpha balancing is
    # Eq. 9 (alpha=0.5 weighs both classes by 0.5, loss_weight=2 undoes it)
    rpn_head=dict(loss_cls=dict(_delete_=True, type='FocalLoss',
                                use_sigmoid=True, gamma=2.0,
                                alpha=0.5, loss_weight=2.0)),
    # RoI classifier (softmax over num_classes + background)
    roi_head=dict(bbox_head=dict(loss_cls=dict(
        _delete_=True, type='SampleLevelBalancedLoss', beta=2.0,
        loss_weight=1.0))))
