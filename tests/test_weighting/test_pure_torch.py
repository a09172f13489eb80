"""The rules are pure torch: usable where mmdet/mmengine/mmcv are absent,
through the public API, and registered whatever the import order."""
import ast
import json
import math
import os.path as osp
import re
import statistics
import subprocess
import sys

import pytest

from _helpers import REPO_ROOT

PUBLIC = ('ALWA', 'DWA', 'DTP', 'GuidedLoss', 'UncertaintyWeighting',
          'GradNorm', 'TDB', 'FAMO', 'RLW', 'GLS', 'IMTL_L', 'STCH',
          'UPGrad', 'MGDA', 'PCGrad', 'IMTL_G', 'AlignedMTL', 'DualProj',
          'CAGrad')

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
                                  FAMO, RLW, GLS, IMTL_L, STCH, UPGrad,
                                  MGDA, PCGrad, IMTL_G, AlignedMTL,
                                  DualProj, CAGrad, RULES, build_rule,
                                  representation_gramian)
rule = build_rule(dict(type='ALWA', variant=1, interval=2))
for value in (1.0, 2.0, 3.0, 5.0):
    rule.step({'cls': value, 'reg': 0.5 * value})
assert rule.weights['cls'] < 1.0, rule.weights
for cls in (ALWA, DWA, DTP, GuidedLoss, UncertaintyWeighting, GradNorm, TDB,
            FAMO, RLW, GLS, IMTL_L, STCH, UPGrad, MGDA, PCGrad, IMTL_G,
            AlignedMTL, DualProj, CAGrad):
    assert RULES[cls.__name__] is cls
# the TorchJD-based rules work with mmdet & co. blocked
assert GLS().prepare({'cls': 1.0, 'reg': 4.0}) == {'cls': 1.0, 'reg': 0.25}
# gradient aggregation in plain torch: the Gramian by autograd, MGDA's
# min-norm weights of orthogonal gradients of norms 1 and 2: (4/5, 1/5)
import torch
z = torch.tensor([1.0, 1.0], requires_grad=True)
g = representation_gramian([z[0], 2 * z[1]], [z])
w = MGDA().prepare({'cls': 1.0, 'reg': 1.0}, gramian=g)
assert [round(float(w[t]), 6) for t in ('cls', 'reg')] == [0.8, 0.2], w
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
                 'uncertainty', 'famo', 'rlw', 'gls', 'imtl_l', 'stch'):
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


#: records the losses every DWA instance is given (DWA is patched before
#: the README's code imports it: the same class object)
RECORD_STEPS = r"""
import json
import mmdet_alwa.weighting as _weighting
_recorded = []
_step = _weighting.DWA.step


def _recording_step(self, raw_losses, **signals):
    _recorded.append(dict(raw_losses))
    return _step(self, raw_losses, **signals)


_weighting.DWA.step = _recording_step
"""


def test_readme_plain_pytorch_loop():
    """The README's loop runs as printed, with mmdet & co. unimportable, and
    ends with DWA's weights as Liu et al. (CVPR 2019, Eq. 1) define them,
    worked out here from the losses the loop gave the rule: with windows of
    ``interval`` steps, ``r_i`` the ratio of task i's mean loss over the
    last window to that over the one before, ``w_i = K exp(r_i / T) /
    sum_j exp(r_j / T)``."""
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    # the README's python block that imports the rules (wherever it sits)
    codes = [c for c in re.findall(r'```python\n(.*?)```', readme, re.S)
             if 'from mmdet_alwa.weighting import' in c]
    assert len(codes) == 1, codes
    code = codes[0]
    # the README's own arguments of DWA(...)
    call, = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call)
             and getattr(n.func, 'id', None) == 'DWA']
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    out = _run(BLOCKER + RECORD_STEPS + code.replace(
        'print(rule.weights)', 'print(dict(rule.weights))') +
        '\nprint(json.dumps(_recorded))\n')
    *_, printed, recorded = out.strip().splitlines()
    weights = ast.literal_eval(printed)
    losses = json.loads(recorded)
    tasks, n, T = kwargs['tasks'], kwargs['interval'], kwargs['temperature']
    assert len(losses) >= 2 * n  # two closed windows: DWA has updated
    last = len(losses) // n * n  # the end of the last closed window
    ratios = {t: statistics.fmean(s[t] for s in losses[last - n:last]) /
              statistics.fmean(s[t] for s in losses[last - 2 * n:last - n])
              for t in tasks}
    total = sum(math.exp(r / T) for r in ratios.values())
    expected = {t: len(tasks) * math.exp(ratios[t] / T) / total
                for t in tasks}
    assert weights == pytest.approx(expected, rel=1e-9)
    assert weights['cls'] != pytest.approx(1.0)  # not the initial weights
