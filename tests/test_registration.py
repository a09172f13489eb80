"""`custom_imports=['mmdet_alwa']` makes every component buildable by name
from mmdet's registries (the registry entry is the class of its module)."""
import importlib

import pytest
from mmdet import registry

from mmdet_alwa.engine.hooks.signals import SIGNAL_PROVIDERS
from mmdet_alwa.weighting import RULES

COMPONENTS = [
    ('HOOKS', 'mmdet_alwa.engine.hooks.loss_weighting_hook',
     'LossWeightingHook'),
    ('HOOKS', 'mmdet_alwa.engine.hooks.nonfinite_guard_hook',
     'NonFiniteGuardHook'),
    ('HOOKS', 'mmdet_alwa.engine.hooks.filtered_annotations_hook',
     'FilteredAnnotationsHook'),
    ('HOOKS', 'mmdet_alwa.engine.hooks.progress_hook', 'RichProgressHook'),
    ('OPTIM_WRAPPERS', 'mmdet_alwa.engine.optimizers.nonfinite_guard',
     'NonFiniteGuardOptimWrapper'),
    ('OPTIM_WRAPPERS', 'mmdet_alwa.engine.optimizers.nonfinite_guard',
     'NonFiniteGuardAmpOptimWrapper'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.counting_filter',
     'CountingFilterAnnotations'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.simclr',
     'RandomResizedCrop'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.simclr', 'ColorJitter'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.simclr', 'GaussianBlur'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.simclr', 'MultiView'),
    ('TRANSFORMS', 'mmdet_alwa.datasets.transforms.simclr',
     'PackMultiViewInputs'),
    ('DATASETS', 'mmdet_alwa.datasets.unlabeled', 'UnlabeledImageDataset'),
    ('MODELS', 'mmdet_alwa.models.losses.ntxent_loss', 'NTXentLoss'),
    ('MODELS', 'mmdet_alwa.models.losses.sample_level_loss',
     'SampleLevelBalancedLoss'),
    ('MODELS', 'mmdet_alwa.models.losses.triplet_loss',
     'MultiAnnotationTripletLoss'),
    ('MODELS', 'mmdet_alwa.models.roi_heads.triplet_roi_head',
     'TripletRoIHead'),
    ('MODELS', 'mmdet_alwa.models.selfsup.simclr', 'SimCLR'),
    ('MODELS', 'mmdet_alwa.models.selfsup.simclr', 'SimCLRDataPreprocessor'),
]


@pytest.mark.parametrize('registry_name,module,name', COMPONENTS,
                         ids=[c[2] for c in COMPONENTS])
def test_registered_in_mmdet(registry_name, module, name):
    cls = getattr(importlib.import_module(module), name)
    assert getattr(registry, registry_name).get(name) is cls


def test_rules_and_signal_providers():
    assert set(RULES) == {'ALWA', 'DWA', 'DTP', 'GuidedLoss',
                          'UncertaintyWeighting', 'GradNorm', 'TDB',
                          'FAMO', 'RLW', 'GLS', 'IMTL_L', 'STCH', 'UPGrad',
                          'MGDA', 'PCGrad', 'IMTL_G', 'AlignedMTL',
                          'DualProj', 'CAGrad'}
    signals = importlib.import_module('mmdet_alwa.engine.hooks.signals')
    assert dict(SIGNAL_PROVIDERS.module_dict) == {
        'kpi': signals.KPIProvider, 'num_samples': signals.NumSamplesProvider,
        'grad_norm': signals.GradNormProvider,
        'loss_after_step': signals.LossAfterStepProvider}


def test_signal_providers_registry_in_mmdets_tree():
    """An mmengine Registry under mmdet's task utils (through our scope's
    node); a provider is built from it alone, also under the Runner's
    default scope, and a task util of its parent is no provider."""
    from mmengine.registry import DefaultScope

    from mmdet_alwa import registry as alwa_registry
    from mmdet_alwa.engine.hooks.signals import (KPIProvider,
                                                 build_signal_provider)
    assert SIGNAL_PROVIDERS is alwa_registry.SIGNAL_PROVIDERS
    assert SIGNAL_PROVIDERS.parent is alwa_registry.TASK_UTILS
    assert alwa_registry.TASK_UTILS.parent is registry.TASK_UTILS
    with DefaultScope.overwrite_default_scope('mmdet'):
        provider = build_signal_provider(dict(type='kpi', warn_after=3))
    assert type(provider) is KPIProvider and provider.warn_after == 3
    assert provider.signal == 'kpi'
    from mmdet.models.task_modules import DeltaXYWHBBoxCoder
    assert SIGNAL_PROVIDERS.get('DeltaXYWHBBoxCoder') is DeltaXYWHBBoxCoder
    with pytest.raises(ValueError, match="unknown signal provider "
                       "'DeltaXYWHBBoxCoder'; known providers: "
                       r"\['grad_norm', 'kpi', 'loss_after_step', "
                       r"'num_samples'\]"):
        build_signal_provider(dict(type='DeltaXYWHBBoxCoder'))
    with pytest.raises(KeyError, match='already registered'):
        SIGNAL_PROVIDERS.register_module(name='kpi', module=KPIProvider)


def test_dataset_check_api_on_clean_data(tiny_data):
    """The check tool's library function, used directly on clean data."""
    import json

    from mmengine.config import Config

    from mmdet_alwa.datasets.check import check_dataset
    from mmdet_alwa.datasets.demo_data import DEMO_CLASSES
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='CocoDataset', data_root=tiny_data, pipeline=[],
        ann_file='annotations/train.json', data_prefix=dict(img='train/'),
        metainfo=dict(classes=DEMO_CLASSES)))))
    report = check_dataset(cfg, 'train', progress=False)
    with open(f'{tiny_data}/annotations/train.json') as f:
        coco = json.load(f)
    assert report.num_images == len(coco['images'])
    assert report.num_boxes == len(coco['annotations'])
    assert report.errors(strict=True) == []
