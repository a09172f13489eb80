"""The package's layers (DEVELOPERS.md, "Architecture"): imports point from
the mmdet glue to the helpers and the pure rules, never back.

    weighting/                      pure torch rules (no other module of ours)
    compat, utils/                  mmengine/torch helpers (rules at most)
    engine/ models/ datasets/ evaluation/, registry   the mmdet glue
"""
import ast
import os
import os.path as osp

import pytest

from _helpers import REPO_ROOT

PACKAGE = osp.join(REPO_ROOT, 'mmdet_alwa')
#: layer of a first-level name -> the first-level names it may import
ALLOWED = {
    'weighting': {'weighting'},
    'compat': {'compat'},
    'utils': {'utils', 'compat', 'weighting'},
}


def _imports(path, module):
    """Absolute names of the mmdet_alwa modules ``path`` imports."""
    package = module if path.endswith('__init__.py') \
        else module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                yield node.module
                continue
            parts = package.split('.')[:len(package.split('.')) -
                                       node.level + 1]
            base = '.'.join(parts + ([node.module] if node.module else []))
            if node.module:
                yield base
            else:  # from . import a, b
                yield from (f'{base}.{a.name}' for a in node.names)


def _modules():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                rel = osp.relpath(path, REPO_ROOT)[:-3].replace(os.sep, '.')
                yield path, rel.removesuffix('.__init__')


def _first_level(module):
    return module.split('.')[1] if module.count('.') else ''


@pytest.mark.parametrize('layer', sorted(ALLOWED))
def test_no_import_up_the_layers(layer):
    wrong = [(module, name)
             for path, module in _modules() if _first_level(module) == layer
             for name in _imports(path, module)
             if name and name.split('.')[0] == 'mmdet_alwa'
             and _first_level(name) not in ALLOWED[layer]]
    assert not wrong


def test_the_import_walker_sees_relative_imports():
    """The oracle of the test above: module names worked out by hand."""
    path = osp.join(PACKAGE, 'datasets', 'check', 'dataset.py')
    names = set(_imports(path, 'mmdet_alwa.datasets.check.dataset'))
    assert {'mmdet_alwa.datasets.check.paths',
            'mmdet_alwa.datasets.check.readers'} <= names
    path = osp.join(PACKAGE, '__init__.py')
    assert 'mmdet_alwa.weighting' in set(_imports(path, 'mmdet_alwa'))


def test_package_import_leaves_the_evaluation_protocols_out():
    """``import mmdet_alwa`` registers modules (the per-class metric of
    ``evaluation/`` included); the linear probe (data loading,
    scikit-learn) is imported by its tool only."""
    path = osp.join(PACKAGE, '__init__.py')
    assert 'mmdet_alwa.evaluation' in set(_imports(path, 'mmdet_alwa'))
    path = osp.join(PACKAGE, 'evaluation', '__init__.py')
    assert set(_imports(path, 'mmdet_alwa.evaluation')) == {
        'mmdet_alwa.evaluation.per_class_ap'}
