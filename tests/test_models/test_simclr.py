"""SimCLR through mmengine's Runner on generated data, and its backbone in a
detector (tiny: ResNet-18 at 1/4 width, 32 px views, a few iterations)."""
import os.path as osp

import pytest
import torch
from _helpers import TINY_WIDTH, config_path, load_tool, tiny_cfg
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet_alwa.utils import safe_checkpoint_loading

SIZE = 32
ITERS = 20


def tiny_simclr_cfg(work_dir, data_root):
    cfg = Config.fromfile(config_path('configs/simclr/simclr_r50_voc.py'))
    cfg.model.backbone.update(depth=18, base_channels=TINY_WIDTH,
                              init_cfg=None)
    cfg.model.update(projector_hidden=64, projector_out=32)
    pipeline = cfg.simclr_pipeline
    pipeline[1].transforms[0].scale = SIZE
    cfg.train_dataloader = dict(
        batch_size=8, num_workers=0, persistent_workers=False,
        # InfiniteSampler: mmengine sleeps 2 s at each restart of a finite one
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(type='UnlabeledImageDataset',
                     img_dir=osp.join(data_root, 'train'), pipeline=pipeline))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS)
    cfg.optim_wrapper.optimizer.lr = 3e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=ITERS)
    cfg.log_processor = dict(window_size=1, by_epoch=False)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                       mp_cfg=dict(mp_start_method='fork',
                                   opencv_num_threads=0))
    cfg.randomness = dict(seed=0)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.work_dir = work_dir
    return cfg


@pytest.fixture(scope='module')
def simclr_run(tiny_data, tmp_path_factory):
    """Train once; loss on one fixed batch before and after training."""
    work_dir = str(tmp_path_factory.mktemp('simclr'))
    cfg = tiny_simclr_cfg(work_dir, tiny_data)
    runner = Runner.from_cfg(cfg)  # sets the seed and the default scope
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    model = runner.model

    def fixed_loss():
        with torch.no_grad():
            data = model.data_preprocessor(batch, True)
            return model(**data, mode='loss')['loss'].item()

    before = fixed_loss()
    runner.train()
    return dict(before=before, after=fixed_loss(), work_dir=work_dir,
                checkpoint=osp.join(work_dir, f'iter_{ITERS}.pth'),
                runner=runner)


def test_training_lowers_the_loss(simclr_run):
    assert simclr_run['after'] < simclr_run['before'] - 0.1, simclr_run
    assert osp.isfile(simclr_run['checkpoint'])
    scalars = simclr_run['runner'].message_hub.log_scalars
    assert 'train/loss' in scalars


def test_model_shapes_and_bad_arguments():
    init_default_scope('mmdet')
    model = MODELS.build(dict(
        type='SimCLR', projector_hidden=16, projector_out=8,
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      out_indices=(3, ), norm_eval=False)))
    x = torch.rand(2, 3, SIZE, SIZE)
    assert model(x, mode='tensor').shape == (2, 64)  # 8 * 2**3 channels
    assert model([x, x.flip(-1)], mode='loss')['loss'].ndim == 0
    with pytest.raises(RuntimeError, match='linear_probe'):
        model(x, mode='predict')
    with pytest.raises(ValueError, match='2 views'):
        model([x], mode='loss')
    with pytest.raises(ValueError, match='projector_out'):
        MODELS.build(dict(type='SimCLR', projector_out=0,
                          backbone=dict(type='ResNet', depth=18)))


def _detector_backbone(checkpoint, prefix, data_root, work_dir):
    cfg = tiny_cfg('configs/simclr/faster_rcnn_r50_alwa1_simclr_voc.py',
                   work_dir, data_root)
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint=checkpoint, prefix=prefix)
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    with safe_checkpoint_loading():  # as tools/train.py (init_cfg)
        detector.init_weights()
    return detector.backbone.state_dict()


def _assert_equal_backbone(loaded, simclr_state):
    expected = {k[len('backbone.'):]: v for k, v in simclr_state.items()
                if k.startswith('backbone.')}
    assert loaded.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(loaded[k], v), k


def test_checkpoint_initialises_detector_backbone(simclr_run, tiny_data,
                                                  tmp_path):
    ckpt = simclr_run['checkpoint']
    state = torch.load(ckpt, weights_only=False)['state_dict']
    loaded = _detector_backbone(ckpt, 'backbone.', tiny_data, str(tmp_path))
    _assert_equal_backbone(loaded, state)


def test_exported_backbone_initialises_detector(simclr_run, tiny_data,
                                                tmp_path):
    tool = load_tool('tools/misc/export_backbone.py')
    out = str(tmp_path / 'backbone.pth')
    tool.main([simclr_run['checkpoint'], out])
    # a plain-tensor file: loads with torch's safe default
    exported = torch.load(out)['state_dict']
    assert not any(k.startswith('backbone.') for k in exported)
    loaded = _detector_backbone(out, None, tiny_data, str(tmp_path))
    state = torch.load(simclr_run['checkpoint'],
                       weights_only=False)['state_dict']
    _assert_equal_backbone(loaded, state)
    with pytest.raises(ValueError, match='no keys'):
        tool.backbone_state_dict(out, prefix='neck.')
