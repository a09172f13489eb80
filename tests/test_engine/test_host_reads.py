"""One host read per training iteration per ``LossWeightingHook``, for every
rule, on real mmdet detectors through mmengine's Runner.

On a GPU each ``.item()``, ``.tolist()``, ``float(t)``, ``bool(t)``,
``nonzero()``... of a device tensor is a host sync. The budget of a
balancing hook is one per iteration: the reduced read of its statistics
(``reduce_finite_mean``), which also brings the rule's device state. The
reads are counted by :func:`mmdet_alwa.utils.host_reads.count_host_reads`
(attributed to mmdet_alwa's own frames, so mmdet's and mmengine's reads do
not count), from the first ``before_train_iter`` hook to the last
``after_train_iter`` hook of each iteration (forward, backward, optimizer
step, our hooks, logging, a checkpoint). On a CPU every tensor is a host
tensor and every such call is counted, which is what holds the GPU budget in
a CPU-only CI; the KPI provider runs its GPU path (``compact=False``).

Coverage: every (detector, run) of the detector matrix
(``tests/test_integration/test_detector_matrix.py``, whose builders this
reuses): ALWA and Guided Loss on each cls/reg pair, DWA, DTP, uncertainty
weighting, GradNorm, TDB and the loss-only rules over TorchJD (FAMO, RLW,
GLS, IMTL-L, STCH) on all of each of the 11 families' losses,
GradNorm at the shared layer's output on Mask R-CNN; plus ALWA_2, Guided
Loss's one-stage form and GradNorm/DWA/TDB with an ``interval`` (weights
updated on some iterations only) on Faster R-CNN and RetinaNet. Each run: 3
iterations; the count must be exactly one read per hook at every
iteration.
"""
from typing import Dict, List

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from _detectors import DETECTORS, detector_cfg
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.utils.host_reads import count_host_reads
from test_integration.test_detector_matrix import _hooks, _runs

ITERS = 3

#: (detector, matrix run, rule overrides): every run of the detector matrix
#: (every rule on every family), and on Faster R-CNN and RetinaNet the
#: other forms of ALWA and Guided Loss and rules with an ``interval``
CASES = [(name, run, {}) for name in DETECTORS for run in _runs(name)] + [
    ('faster_rcnn', 'alwa+guided', dict(alwa=dict(variant=2),
                                        guided=dict(mode='one_stage'))),
    ('faster_rcnn', 'gradnorm', dict(gradnorm=dict(interval=2))),
    ('retinanet', 'alwa', dict(alwa=dict(variant=2))),
    ('retinanet', 'dwa', dict(dwa=dict(interval=2))),
    ('retinanet', 'tdb', dict(tdb=dict(interval=2))),
]


@pytest.fixture(autouse=True, scope='module')
def _cheap_pretty_text():
    """mmengine formats the config with yapf several times a run; nothing
    here reads it."""
    original = Config.pretty_text
    Config.pretty_text = property(lambda self: f'# {self.filename}')
    yield
    Config.pretty_text = original


class _Open(Hook):
    priority = 'HIGHEST'

    def __init__(self, reads):
        self.reads = reads

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.reads.reset()
        self.reads.enabled = True


class _Close(Hook):
    priority = 'LOWEST'

    def __init__(self, reads, per_iter: List[Dict[str, int]]):
        self.reads, self.per_iter = reads, per_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.reads.enabled = False
        self.per_iter.append(dict(self.reads.sites))


def _hook_cfgs(name, run, overrides):
    hooks = _hooks(name, run)
    for key, hook in hooks.items():
        hook['rule'].update(overrides.get(key, {}))
        if hook['rule']['type'] == 'DTP':  # the KPIs' GPU path: no read
            hook['signals'] = dict(kpi=dict(type='kpi', compact=False))
    return hooks


@pytest.mark.parametrize(
    'name,run,overrides', [pytest.param(*c, id=f'{c[0]}-{c[1]}' + (
        '-' + '-'.join(f'{k}{v}' for h in c[2].values()
                       for k, v in h.items()) if c[2] else ''))
                           for c in CASES])
def test_one_host_read_per_iteration_per_hook(name, run, overrides,
                                              tmp_path, tiny_data):
    hooks = _hook_cfgs(name, run, overrides)
    cfg = detector_cfg(name, str(tmp_path), tiny_data, ITERS, hooks,
                       checkpoint_interval=2)
    runner = Runner.from_cfg(cfg)
    per_iter: List[Dict[str, int]] = []
    with count_host_reads() as reads:
        reads.enabled = False  # counted inside the iterations only
        runner.register_hook(_Open(reads))
        runner.register_hook(_Close(reads, per_iter))
        runner.train()
    ours = [h for h in runner.hooks if isinstance(h, LossWeightingHook)]
    assert len(ours) == len(hooks) and len(per_iter) == ITERS
    for it, sites in enumerate(per_iter, 1):
        total = sum(sites.values())
        where = '\n'.join(f'{n:4d}  {s}' for s, n in sorted(
            sites.items(), key=lambda x: -x[1]))
        assert total <= len(ours), (
            f'{name}/{run}: {total} host reads at iteration {it} for '
            f'{len(ours)} LossWeightingHook(s) (budget: 1 each):\n{where}')
        # the one read each hook needs: the counter sees it
        assert total == len(ours), where
        assert all('loss_weighting/reduce.py' in s for s in sites), where
