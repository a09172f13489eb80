# Faster R-CNN R50-FPN on VOC0712 with MATL's auxiliary triplet loss on the RoI
# features of the positive proposals: (1 - lambda) * triplet(class labels) +
# lambda * triplet(box-shape labels). Training only; inference is unchanged.
# Make the box labels first (docs/matl.md):
#   python tools/analysis_tools/cluster_boxes.py \
#       configs/matl/faster_rcnn_r50_matl_voc.py --k 3 --out <box_labels>
_base_ = '../_base_/faster_rcnn_r50_voc.py'

# ---- knobs ----
box_labels = 'data/VOCdevkit/voc0712_box_labels.json'  # cluster_boxes.py JSON
matl_lambda = 0.5  # weight of the box-label triplet loss (paper's lambda)
triplet_margin = 0.1  # the MATL code's margin
triplet_mining = 'batch_all'  # or 'batch_hard'
triplet_loss_weight = 1.0
embed_channels = 128

model = dict(
    roi_head=dict(
        type='TripletRoIHead',
        box_clusters=box_labels,
        embed_channels=embed_channels,
        loss_triplet=dict(
            type='MultiAnnotationTripletLoss',
            box_weight=matl_lambda,
            margin=triplet_margin,
            mining=triplet_mining,
            loss_weight=triplet_loss_weight)))
