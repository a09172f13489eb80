"""What `pip install mmdet_alwa` asks of an environment: Python 3.11-3.13,
ranges (no exact pins, no opencv), the tools' libraries as extras that
`import mmdet_alwa` does not need; and the exact pins of our own runs in
requirements/constraints.txt, which are the versions installed here."""
import ast
import glob
import importlib.metadata
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import setuptools
import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from _helpers import REPO_ROOT

#: libraries only tools/ and benchmarks/ use (extras), or that no module of
#: the package may import at its top level
EXTRA_ONLY = ('sklearn', 'matplotlib', 'tensorboard', 'scipy')


@pytest.fixture(scope='module')
def setup_kwargs():
    captured = {}
    orig = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        runpy.run_path(osp.join(REPO_ROOT, 'setup.py'), run_name='__main__')
    finally:
        setuptools.setup = orig
    return captured


def _reqs(lines):
    return {Requirement(line).name: Requirement(line) for line in lines}


def test_python_versions(setup_kwargs):
    spec = SpecifierSet(setup_kwargs['python_requires'])
    assert [v for v in ('3.10', '3.11', '3.12', '3.13', '3.14')
            if v in spec] == ['3.11', '3.12', '3.13']
    classifiers = setup_kwargs['classifiers']
    for v in ('3.11', '3.12', '3.13'):
        assert f'Programming Language :: Python :: {v}' in classifiers


def test_install_requires_are_ranges(setup_kwargs):
    reqs = _reqs(setup_kwargs['install_requires'])
    assert not [r for r in reqs.values() if '==' in str(r.specifier)]
    assert not [n for n in reqs if n.startswith('opencv')]
    # (name, versions that must be allowed, versions that must not)
    for name, ok, bad in (
            ('mmdet', ['3.3.0', '3.3.9'], ['3.2.0', '3.4.0']),
            ('mmengine', ['0.10.4', '0.10.7'], ['0.9.1', '0.11.0']),
            ('mmcv', ['2.1.0', '2.1.1'], ['2.0.1', '2.2.0']),
            ('numpy', ['1.26.4', '2.4.6'], ['3.0.0']),
            ('torch', ['2.6.0', '2.11.0+cu130', '2.13.0+cpu'], ['2.5.1'])):
        spec = reqs[name].specifier
        assert [v for v in ok if spec.contains(v, prereleases=True)] == ok
        assert not [v for v in bad if spec.contains(v, prereleases=True)]
    for name in ('scikit-learn', 'matplotlib', 'scipy'):
        assert name not in reqs
    extras = setup_kwargs['extras_require']
    tools = _reqs(extras['tools'])
    assert {'scikit-learn', 'matplotlib', 'scipy'} <= set(tools)
    assert set(tools) <= set(_reqs(extras['tests']))  # tests run the tools
    for r in list(tools.values()) + list(_reqs(extras['tests']).values()):
        assert '==' not in str(r.specifier), r


def test_constraints_pin_what_is_installed_and_fit_the_ranges(setup_kwargs):
    """Our own runs install exactly these (scripts/install.sh -c), so the
    pins are the venv's versions (torch too, unless a CUDA torch was kept
    by FORCE_CUDA=1), and every pin lies inside our own ranges."""
    with open(osp.join(REPO_ROOT, 'requirements', 'constraints.txt')) as f:
        pins = _reqs(line.split('#')[0].strip() for line in f
                     if line.split('#')[0].strip())
    for name in ('torch', 'mmcv', 'mmengine', 'mmdet', 'numpy',
                 'opencv-python', 'scikit-learn', 'matplotlib', 'tensorboard',
                 'pycocotools', 'pytest', 'pytest-xdist', 'openmim',
                 'openxlab', 'setuptools'):
        assert name in pins, name
    for name, pin in pins.items():
        assert str(pin.specifier).startswith('=='), pin
        if name == 'torch' and torch.version.cuda is not None:
            continue
        have = importlib.metadata.version(name)
        assert pin.specifier.contains(have), (name, have, str(pin))
    ranges = setup_kwargs['install_requires'] + \
        setup_kwargs['extras_require']['tests']
    with open(osp.join(REPO_ROOT, 'requirements', 'build.txt')) as f:
        ranges += [line.split('#')[0].strip() for line in f
                   if line.split('#')[0].strip()]
    for name, req in _reqs(ranges).items():
        if name in pins:
            version = str(pin_version(pins[name]))
            assert req.specifier.contains(version), (name, version, str(req))


def pin_version(req):
    spec, = req.specifier
    return spec.version


def _top_level_imports(path):
    """Modules imported at module level (not inside a function/class)."""
    tree = ast.parse(open(path).read(), path)
    names = []
    for node in tree.body:  # only statements of the module itself
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) \
                else [node]:
            if isinstance(sub, ast.Import):
                names += [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom) and sub.level == 0:
                names.append(sub.module)
    return names


def test_no_package_module_imports_an_extra_at_top_level():
    bad = []
    pkg = osp.join(REPO_ROOT, 'mmdet_alwa')
    for path in glob.glob(osp.join(pkg, '**', '*.py'), recursive=True):
        for name in _top_level_imports(path):
            if name.split('.')[0] in EXTRA_ONLY or \
                    name.startswith('torch.utils.tensorboard'):
                bad.append((osp.relpath(path, REPO_ROOT), name))
    assert bad == []


BLOCKER = '''
import sys
BLOCKED = {blocked!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED or \\
                name.startswith('torch.utils.tensorboard'):
            raise ModuleNotFoundError(f'blocked: {{name}}', name=name)
sys.meta_path.insert(0, Refuse())
import mmdet_alwa, mmdet_alwa.utils.env_check
from mmdet.registry import HOOKS
assert HOOKS.get('LossWeightingHook') is not None
from mmdet_alwa.evaluation.linear_probe import multilabel_map
try:
    multilabel_map([[0.5]], [[1.0]])
except ImportError as e:
    print('probe:', e)
print('imported', sorted(m for m in sys.modules
                         if m.split('.')[0] in BLOCKED))
'''


def test_import_works_without_the_extras():
    """scikit-learn and TensorBoard refused by a meta-path finder:
    mmdet_alwa still imports and registers (matplotlib and SciPy cannot be
    refused: mmdet imports them itself; that our modules do not is
    test_no_package_module_imports_an_extra_at_top_level); the linear probe
    names the extra when it is used."""
    proc = subprocess.run(
        [sys.executable, '-c',
         BLOCKER.format(blocked=('sklearn', 'tensorboard'))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'imported []' in proc.stdout
    assert ('probe: mmdet_alwa.evaluation.linear_probe needs '
            'scikit-learn: pip install "mmdet_alwa[tools]"') in proc.stdout
