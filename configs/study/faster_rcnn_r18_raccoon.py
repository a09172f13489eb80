# The CPU-scale real-data study (docs/results.md): the demo's small Faster
# R-CNN (narrow ResNet-18 + FPN from scratch, configs/demo/) on the raccoon
# photographs (PASCAL VOC layout, one class, 160 trainval / 40 test images),
# ~192 px, a few hundred iterations. Sized so that one run, evaluation
# included, takes about two single-threaded CPU minutes; the balancers are
# added per cell by tools/experiments/tables/study.py.
_base_ = ['../demo/faster_rcnn_r18_demo.py']

# used in several places below; data_root: ln -s <path>/raccoon data/raccoon
data_root = 'data/raccoon/'
demo_data = None  # not the generated demo data
classes = ('raccoon', )
img_scale = (192, 192)  # (w, h): the longer side becomes 192 px
batch_size = 4
max_iters = 150
lr = 2e-3

# ---- model ----
model = dict(
    # anchors of 32-512 px (strides 4-64); raccoons are large
    rpn_head=dict(anchor_generator=dict(scales=[8])),
    roi_head=dict(bbox_head=dict(num_classes=len(classes))))

# ---- data ----
metainfo = dict(classes=classes)
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
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
# one process: the study runs single-threaded beside other jobs
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root=''),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# mAP@0.5, area under the interpolated PR curve (VOC2010+)
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP',
                     eval_mode='area', iou_thrs=[0.5])
test_evaluator = val_evaluator

# ---- schedule (iterations) ----
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters,
         T_max=max_iters, eta_min=lr * 0.01),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100,
                    max_keep_ckpts=1, save_last=True))
log_processor = dict(by_epoch=False, window_size=10)
