"""Smoke run of benchmarks/fault_drill.py: a few iterations with one fault
of each kind and a kill + resume, through tools/train.py."""

import pytest

from _helpers import load_tool

drill = load_tool('benchmarks/fault_drill.py')


def test_plan_spreads_faults_and_kills_between_checkpoints():
    p = drill.plan(40, 2, 10, seed=3)
    iters = [i for i, _ in p['faults']]
    assert sorted(k for _, k in p['faults']) == sorted(drill.KINDS * 2)
    assert min(b - a for a, b in zip(iters, iters[1:])) >= 2
    assert 10 < p['kill_at'] < 39 and p['kill_at'] not in iters
    with pytest.raises(ValueError, match='too short'):
        drill.plan(12, 3, 4, seed=0)
    with pytest.raises(ValueError, match='no room for a kill'):
        drill.plan(6, 1, 4, seed=0)


def test_drill_smoke(tmp_path):
    f = drill.run_drill(iters=10, checkpoint_interval=4, num_faults=1,
                        seed=0, work_dir=str(tmp_path))
    text = drill.report(f, 10)
    assert f['rc'] == dict(reference=0, killed=-9, resumed=0), text
    # every numerical fault cost exactly its own update, nothing else
    assert f['survived_numerical'] == 3, text
    assert f['skips'] == 3 + f['ref_skips'], text
    assert f['finite'] and f['equal_model'] and f['equal_optim'], text
    assert f['ok'] and text.endswith('OK')
    assert 'faults survived: 5/5' in text
