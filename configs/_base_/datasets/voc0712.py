# PASCAL VOC 0712 as in mmdet (07+12 trainval, 07 test) with our train-time
# filtering of degenerate boxes. Layout: see README "Preparing datasets".
_base_ = 'mmdet::_base_/datasets/voc0712.py'

data_root = 'data/VOCdevkit/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # drop (and count) degenerate boxes; after Resize, which clips boxes to
    # the image (docs/troubleshooting_nan.md)
    dict(type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1),
         keep_empty=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
_voc_trainval = dict(
    type='VOCDataset',
    data_root=data_root,
    filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
    pipeline=train_pipeline,
    backend_args=backend_args)
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            datasets=[
                dict(_voc_trainval,
                     ann_file='VOC2007/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root='VOC2007/')),
                dict(_voc_trainval,
                     ann_file='VOC2012/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root='VOC2012/')),
            ])))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
