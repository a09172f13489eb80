# MATL with lambda = 0.25 (the paper's grid: 0.25, 0.5, 0.75).
_base_ = './faster_rcnn_r50_matl_voc.py'
model = dict(roi_head=dict(loss_triplet=dict(box_weight=0.25)))
