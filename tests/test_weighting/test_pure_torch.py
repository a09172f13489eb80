"""The rules are pure torch: usable where mmdet/mmengine/mmcv are absent."""
import subprocess
import sys

from _helpers import REPO_ROOT

SCRIPT = r'''
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmengine', 'mmcv'):
            raise ImportError(f'{name} is blocked')

sys.meta_path.insert(0, Blocker())
from mmdet_alwa.weighting import RULES, build_rule
rule = build_rule(dict(type='ALWA', variant=1, interval=2))
for value in (1.0, 2.0, 3.0, 5.0):
    rule.step({'cls': value, 'reg': 0.5 * value})
assert rule.weights['cls'] < 1.0, rule.weights
for name in RULES:
    assert name
loaded = sorted(m for m in sys.modules
                if m.split('.')[0] in ('mmdet', 'mmengine', 'mmcv'))
assert not loaded, loaded
print('ok', sorted(RULES))
'''


def test_rules_import_and_run_without_mmdet():
    proc = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'ALWA' in proc.stdout and 'GradNorm' in proc.stdout
