# The paper's "CLTL" baseline: the triplet loss on class labels only
# (lambda = 0), so no box-label file is needed.
_base_ = './faster_rcnn_r50_matl_voc.py'
model = dict(
    roi_head=dict(box_clusters=None, loss_triplet=dict(box_weight=0.0)))
