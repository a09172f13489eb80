"""The rules are pure torch: usable where mmdet/mmengine/mmcv are absent,
through the public API, and registered whatever the import order."""
import ast
import os.path as osp
import re
import subprocess
import sys

import pytest

from _helpers import REPO_ROOT

PUBLIC = ('ALWA', 'DWA', 'DTP', 'GuidedLoss', 'UncertaintyWeighting',
          'GradNorm', 'TDB')

# a meta-path finder that makes mmdet, mmengine and mmcv unimportable
BLOCKER = r'''
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmengine', 'mmcv'):
            raise ImportError(f'{name} is blocked')

sys.meta_path.insert(0, Blocker())
'''

SCRIPT = BLOCKER + r'''
from mmdet_alwa.weighting import (ALWA, DWA, DTP, GuidedLoss,
                                  UncertaintyWeighting, GradNorm, TDB,
                                  RULES, build_rule)
rule = build_rule(dict(type='ALWA', variant=1, interval=2))
for value in (1.0, 2.0, 3.0, 5.0):
    rule.step({'cls': value, 'reg': 0.5 * value})
assert rule.weights['cls'] < 1.0, rule.weights
for cls in (ALWA, DWA, DTP, GuidedLoss, UncertaintyWeighting, GradNorm, TDB):
    assert RULES[cls.__name__] is cls
loaded = sorted(m for m in sys.modules
                if m.split('.')[0] in ('mmdet', 'mmengine', 'mmcv'))
assert not loaded, loaded
print('ok', sorted(RULES))
'''


def _run(code):
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_public_api_without_mmdet():
    out = _run(SCRIPT)
    assert all(name in out for name in PUBLIC)


def test_rule_modules_register_through_the_registry_module():
    """No rule module reads ``register_rule`` from the package, whose
    ``__init__`` may not have bound it yet (import order)."""
    folder = osp.join(REPO_ROOT, 'mmdet_alwa', 'weighting')
    for name in ('alwa', 'dtp', 'dwa', 'gradnorm', 'guided', 'tdb',
                 'uncertainty'):
        tree = ast.parse(open(osp.join(folder, f'{name}.py')).read())
        sources = [n.module for n in ast.walk(tree)
                   if isinstance(n, ast.ImportFrom)
                   and 'register_rule' in [a.name for a in n.names]]
        assert sources == ['registry'], name


def test_registry_module_imports_nothing():
    path = osp.join(REPO_ROOT, 'mmdet_alwa', 'weighting', 'registry.py')
    tree = ast.parse(open(path).read())
    assert not [n for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_register_rule_rejects_a_second_class_of_a_name():
    from mmdet_alwa.weighting import DWA, RULES, register_rule
    assert register_rule(DWA) is DWA  # the same class again: no change
    impostor = type('DWA', (DWA, ), {})
    with pytest.raises(ValueError, match="'DWA' is registered already"):
        register_rule(impostor)
    assert RULES['DWA'] is DWA


def test_readme_plain_pytorch_loop():
    """The README's loop runs as printed, with mmdet & co. unimportable, and
    ends with DWA's weights: K * softmax(r / T), which sum to K = 2."""
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    # the README's python block that imports the rules (wherever it sits)
    codes = [c for c in re.findall(r'```python\n(.*?)```', readme, re.S)
             if 'from mmdet_alwa.weighting import' in c]
    assert len(codes) == 1, codes
    code = codes[0]
    out = _run(BLOCKER + code.replace(
        'print(rule.weights)', 'print(dict(rule.weights))'))
    weights = ast.literal_eval(out.strip().splitlines()[-1])
    assert set(weights) == {'cls', 'reg'}
    assert sum(weights.values()) == pytest.approx(2.0)
    assert weights['cls'] != pytest.approx(1.0)  # DWA did update
