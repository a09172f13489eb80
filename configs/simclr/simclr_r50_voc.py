# SimCLR pretraining of the detectors' ResNet-50 on the VOC0712 trainval
# images (labels ignored), with Briody & Aygen's recipe: two views per image
# (Sec. 2.3.1), NT-Xent with tau = 0.5, Adam lr 3e-4, batch 128, 10 epochs.
# The checkpoint's `backbone.*` weights initialise any detector:
# configs/simclr/faster_rcnn_r50_*_voc.py. See docs/simclr.md.
_base_ = [
    '../_base_/datasets/voc0712.py',  # only its train set's images are used
    '../_base_/default_runtime.py',
]

# ---- model ----
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SimCLRDataPreprocessor',
        # RGB mean/std of the pretraining images (Briody & Aygen normalise with
        # the dataset's own): print yours with
        # tools/analysis_tools/dataset_mean_std.py
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,  # BN statistics are learned during pretraining
        style='pytorch',
        # Briody & Aygen start from the ImageNet encoder; init_cfg=None: random
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet50')),
    projector_hidden=2048,
    projector_out=128,
    # tau; a child config: model = dict(loss=dict(temperature=0.2))
    loss=dict(type='NTXentLoss', temperature=0.5))

# ---- data ----
view_pipeline = [
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
         hue=0.1, prob=0.8),
    # mmcv's; ITU-R 601 luma weights in BGR order, 3 channels kept
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.299)),
    dict(type='GaussianBlur', kernel_size=23, sigma=(0.1, 2.0), prob=1.0),
]
simclr_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', transforms=view_pipeline, num_views=2),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(
    _delete_=True,
    # per GPU; more negatives help SimCLR (docs/simclr.md); a child config:
    # train_dataloader = dict(batch_size=64)
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    # a small last batch would have few negatives
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='UnlabeledImageDataset',
        dataset={{_base_.train_dataloader.dataset}},
        pipeline=simclr_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

# ---- schedule ----
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',
    nonfinite_policy='raise',
    optimizer=dict(type='Adam', lr=3e-4))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_last=True))

# ---- DDP ----
# Under DDP (several GPUs) mmengine's Runner converts every BatchNorm to
# torch's SyncBatchNorm, so that BN statistics cover the whole batch as in
# Chen et al. (docs/simclr.md); without DDP it is ignored. torch's
# SyncBatchNorm needs GPUs: for a CPU (gloo) DDP run pass
# --cfg-options sync_bn=None.
sync_bn = 'torch'
