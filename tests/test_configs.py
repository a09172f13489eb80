"""Every config under configs/ parses and builds its model and hooks.

Pretrained weights cannot be downloaded here, so every ``init_cfg`` is
dropped before building (users keep the real ones)."""
import copy
import glob
import os
import os.path as osp

import pytest
import yaml
from mmengine.config import Config

from mmdet.models.dense_heads import RPNHead
from mmdet.registry import DATASETS, HOOKS, MODELS
from mmdet.utils import register_all_modules

from _helpers import REPO_ROOT

CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p.split(osp.sep))


def _strip_init_cfg(node):
    if isinstance(node, dict):
        node.pop('init_cfg', None)
        for value in node.values():
            _strip_init_cfg(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_init_cfg(value)


def test_the_config_list_covers_every_folder():
    """The tests below are parametrised by CONFIGS: it holds configs of
    every folder of configs/ (the glob is recursive), the demo's among them,
    and no base config."""
    root = osp.join(REPO_ROOT, 'configs')
    folders = {d for d in os.listdir(root)
               if osp.isdir(osp.join(root, d)) and d not in ('_base_',
                                                             '__pycache__')}
    assert {c.split(osp.sep)[1] for c in CONFIGS} == folders
    assert osp.join('configs', 'demo', 'faster_rcnn_r18_alwa1_demo.py') \
        in CONFIGS  # tools/demo.py's
    assert not [c for c in CONFIGS if '_base_' in c]


def _dataset_classes(cfg):
    """The classes of the train dataset: its ``metainfo`` or, without
    one, those of its mmdet dataset class (wrappers unwrapped); None for
    datasets without classes (SimCLR's images)."""
    ds = cfg.train_dataloader.dataset
    if ds['type'] == 'UnlabeledImageDataset':  # images of a detection set
        return None
    while 'dataset' in ds or 'datasets' in ds:
        ds = ds['dataset'] if 'dataset' in ds else ds['datasets'][0]
    classes = ds.get('metainfo', {}).get('classes')
    if classes is None:
        meta = getattr(DATASETS.get(ds['type']), 'METAINFO', {})
        classes = meta.get('classes')
    return classes


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds(config):
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    assert cfg.get('custom_imports', {}).get('imports') == ['mmdet_alwa'], \
        'configs must load the package with custom_imports'
    # a ConfigDict, not plain dicts: two-stage detectors read train_cfg.rpn
    model_cfg = copy.deepcopy(cfg.model)
    _strip_init_cfg(model_cfg)
    model = MODELS.build(model_cfg)
    assert type(model) is MODELS.get(model_cfg.type)
    # every classifying head has the classes of the train dataset (the RPN
    # tells objects from background)
    classes = _dataset_classes(cfg)
    heads = [m for m in model.modules()
             if isinstance(getattr(m, 'num_classes', None), int)
             and not isinstance(m, RPNHead)]
    if classes is None:
        assert not heads
    else:
        assert heads and {m.num_classes for m in heads} == {len(classes)}
    # balancing hooks live in default_hooks (merged by children), keyed by
    # their name, and name loss modules of this very model
    assert not any(h.get('type') == 'LossWeightingHook'
                   for h in cfg.get('custom_hooks', []))
    for key, hook_cfg in cfg.default_hooks.items():
        if hook_cfg and hook_cfg['type'] == 'LossWeightingHook':
            hook = HOOKS.build(copy.deepcopy(hook_cfg))
            assert hook.name == key
            for paths in hook.loss_paths.values():
                for path in paths:  # raises if it is no module
                    model.get_submodule(path)


def test_model_index_lists_every_config():
    """`mim search mmdet_alwa` reads model-index.yml (shipped in .mim): each
    metafile names every config of its folder, with its real path."""
    index = yaml.safe_load(open(osp.join(REPO_ROOT, 'model-index.yml')))
    for meta in index['Import']:
        folder = osp.dirname(meta)
        models = yaml.safe_load(open(osp.join(REPO_ROOT, meta)))['Models']
        listed = sorted(m['Config'] for m in models)
        assert listed == [c for c in CONFIGS if osp.dirname(c) == folder]
        assert all(m['Name'] == osp.basename(m['Config'])[:-3]
                   for m in models)
