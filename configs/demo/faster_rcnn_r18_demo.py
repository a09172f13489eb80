# A small Faster R-CNN (narrow ResNet-18 + FPN, trained from scratch) on the
# built-in demo data (mmdet_alwa/datasets/demo_data.py, generated on first use
# by tools/demo.py). Sized so that `make demo` trains and evaluates it in a few
# minutes on a 2-core CPU and reaches bbox mAP@0.5 >= 0.5.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/default_runtime.py',  # mmdet's + custom_imports, TensorBoard
]

# data_root, classes and img_scale are used in several places below;
# demo_data: the arguments of generate_demo_dataset (tools/demo.py).
data_root = 'data/demo/'
classes = ('disc', 'square', 'triangle', 'bar', 'ring')  # = DEMO_CLASSES
img_scale = (160, 120)  # (w, h)
demo_data = dict(num_train=320, num_val=60, img_size=img_scale, seed=0)

# ---- model ----
model = dict(
    backbone=dict(
        depth=18,
        base_channels=16,  # stage widths 16, 32, 64, 128
        # from scratch: every stage trains, BN statistics are learned
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(
        in_channels=[16, 32, 64, 128],
        out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        # anchors of 16-256 px (strides 4-64); objects are 14-150 px
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # a fixed 2x2 sampling grid: the adaptive one (0) made RoIAlign's CPU
        # backward a fifth of the iteration time
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=64),
        bbox_head=dict(
            in_channels=64,
            fc_out_channels=256,
            num_classes=len(classes))),
    # a handful of objects per image needs far fewer proposals than COCO
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# ---- data ----
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    # FilterAnnotations that counts what it drops (FilteredAnnotationsHook)
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
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator

# ---- schedule ----
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=24, val_interval=24)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    # stops with a clear error on a NaN/inf loss (docs/troubleshooting_nan.md)
    type='NonFiniteGuardOptimWrapper',
    nonfinite_policy='raise',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=24,
         T_max=24, eta_min=2e-5, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=24,
                    max_keep_ckpts=1, save_last=True))
log_processor = dict(window_size=10)
