# MATL on a side branch over the RoIAlign features (embedding='roi'), the
# head's first version: a deviation from the paper, whose triplet losses shape
# the representation the classifier and the regressor share; here their
# gradient reaches the FPN and the backbone but not bbox_head.shared_fcs.
_base_ = './faster_rcnn_r50_matl_voc.py'
model = dict(roi_head=dict(embedding='roi'))
