# The demo detector (faster_rcnn_r18_demo.py) on the small-object variant of
# the demo data (issue 19; docs/alwa.md, "Small objects"): discs of 4-20 px
# (longer side) among the four other classes at 60-150 px, at 320x240. The
# data is generated on first use into its own folder, data/demo_small/.
# Validation logs per-class AP (CocoMetric, classwise=True) and per-class
# AP@0.5 and recall (PerClassAPMetric). The model, its
# anchors (16-256 px) included, is the demo's, unchanged, as a user would.
_base_ = ['./faster_rcnn_r18_demo.py']

data_root = 'data/demo_small/'
img_scale = (320, 240)  # (w, h)
# the arguments of generate_demo_dataset (mmdet_alwa/datasets/demo_data.py)
demo_data = dict(num_train=320, num_val=60, img_size=img_scale, seed=0,
                 max_objects=8, small_class='disc', small_size=(4, 20),
                 large_size=(60, 150))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
# CocoMetric (coco/bbox_mAP_50, per-class AP@[.5:.95]) and the per-class
# AP@0.5, recall and detection counts (per_class/<class>_AP50, _recall,
# _num_dets; mmdet_alwa/evaluation/per_class_ap.py)
val_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + 'annotations/val.json',
         metric='bbox', format_only=False, classwise=True),
    dict(type='PerClassAPMetric'),
]
test_evaluator = val_evaluator
