# Sample-level dynamic balancing (paper 004 Eq. 9, -(1-p)^beta log p) on
# RetinaNet R50 VOC0712: the focal loss without its alpha class balancing;
# see docs/balancers.md.
_base_ = '../alwa/retinanet_r50_baseline_voc.py'

# beta (mmdet's gamma) = 2: the sample-level focusing parameter
model = dict(bbox_head=dict(loss_cls=dict(gamma=2.0, alpha=0.5,
                                          loss_weight=2.0)))
