# SimCLR pretraining of the detectors' ResNet-50 on the VOC0712 trainval
# images (labels ignored), with paper 001's recipe: two views per image
# (Sec. 2.3.1), NT-Xent with tau = 0.5, Adam lr 3e-4, batch 128, 10 epochs.
# The checkpoint's `backbone.*` weights initialise any detector:
# configs/simclr/faster_rcnn_r50_*_voc.py. See docs/simclr.md.
_base_ = [
    '../_base_/datasets/voc0712.py',  # only its train set's images are used
    '../_base_/default_runtime.py',
]

# ---- knobs ----
depth = 50
# paper 001 starts from the ImageNet encoder; None: random initialisation
backbone_init = 'torchvision://resnet50'
img_size = 224
batch_size = 128  # per GPU; more negatives help SimCLR (docs/simclr.md)
max_epochs = 10
lr = 3e-4
temperature = 0.5
projector_hidden = 2048
projector_out = 128
# RGB mean/std of the pretraining images (paper 001 normalises with the
# dataset's own): print yours with tools/analysis_tools/dataset_mean_std.py
data_mean = [123.675, 116.28, 103.53]
data_std = [58.395, 57.12, 57.375]
num_workers = 8

# ---- model ----
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SimCLRDataPreprocessor',
        mean=data_mean,
        std=data_std,
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=depth,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,  # BN statistics are learned during pretraining
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=backbone_init)
        if backbone_init else None),
    projector_hidden=projector_hidden,
    projector_out=projector_out,
    loss=dict(type='NTXentLoss', temperature=temperature))

# ---- data ----
view_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size),
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
    batch_size=batch_size,
    num_workers=num_workers,
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
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',
    nonfinite_policy='raise',
    optimizer=dict(type='Adam', lr=lr))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_last=True))
