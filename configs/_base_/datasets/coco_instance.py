# COCO 2017 instances (boxes and masks) as in mmdet, with our train-time
# filtering of degenerate boxes (their masks go with them). Layout: see README
# "Preparing datasets".
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # drop (and count) degenerate boxes; after Resize, which clips boxes to
    # the image (docs/troubleshooting_nan.md)
    dict(type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
