"""Every config under configs/ parses and builds its model and hooks.

Pretrained weights cannot be downloaded here, so every ``init_cfg`` is
dropped before building (users keep the real ones)."""
import copy
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet.registry import HOOKS, MODELS
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


def test_there_are_configs():
    assert len(CONFIGS) > 0


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
    assert sum(p.numel() for p in model.parameters()) > 0
    # balancing hooks live in default_hooks (merged by children), keyed by
    # their name, and name loss modules of this very model
    assert not any(h.get('type') == 'LossWeightingHook'
                   for h in cfg.get('custom_hooks', []))
    for key, hook_cfg in cfg.default_hooks.items():
        if hook_cfg and hook_cfg['type'] == 'LossWeightingHook':
            hook = HOOKS.build(copy.deepcopy(hook_cfg))
            assert hook.name == key
            resolved = hook._resolve(model)
            assert all(resolved.values())
