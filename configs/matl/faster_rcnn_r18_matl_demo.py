# MATL on the built-in demo data (5 shape classes; docs/demo.md): the small
# from-scratch Faster R-CNN of configs/demo/faster_rcnn_r18_demo.py with the
# triplet losses on its shared FC output. The study of docs/matl.md runs it
# with a shorter schedule (tools/analysis_tools/matl_study.py). Box labels:
#   python tools/analysis_tools/cluster_boxes.py \
#       configs/matl/faster_rcnn_r18_matl_demo.py --out data/demo/box_labels.json
_base_ = '../demo/faster_rcnn_r18_demo.py'

model = dict(
    roi_head=dict(
        type='TripletRoIHead',
        box_clusters='data/demo/box_labels.json',
        num_box_labels=3,
        embedding='shared',
        embed_channels=128,
        loss_triplet=dict(
            type='MultiAnnotationTripletLoss',
            box_weight=0.5,
            margin=0.1,
            mining='batch_all',
            loss_weight=1.0)))
