# Faster R-CNN R50-FPN on VOC0712 with MATL's auxiliary triplet loss on the
# representation that the bbox head's classifier and regressor share (the
# output of shared_fcs.1): (1 - lambda) * triplet(class labels) +
# lambda * triplet(box-shape labels). Training only; inference is unchanged.
# Make the box labels first (docs/matl.md):
#   python tools/analysis_tools/cluster_boxes.py \
#       configs/matl/faster_rcnn_r50_matl_voc.py --out <box_clusters>
# The knobs are the fields below; a child config changes one with one line:
#   model = dict(roi_head=dict(loss_triplet=dict(box_weight=0.25)))  # lambda
#   model = dict(roi_head=dict(loss_triplet=dict(margin=0.2)))
#   model = dict(roi_head=dict(num_box_labels=4, box_clusters='k4.json'))  # k
_base_ = '../_base_/faster_rcnn_r50_voc.py'

model = dict(
    roi_head=dict(
        type='TripletRoIHead',
        box_clusters='data/VOCdevkit/voc0712_box_labels.json',
        num_box_labels=3,  # k of K-means, as in the authors' code
        embedding='shared',  # or 'roi': side branch on the RoI features
        embed_channels=128,  # None: no projection
        loss_triplet=dict(
            type='MultiAnnotationTripletLoss',
            box_weight=0.5,  # the paper's lambda
            margin=0.1,
            mining='batch_all',  # or 'batch_hard'
            loss_weight=1.0)))
