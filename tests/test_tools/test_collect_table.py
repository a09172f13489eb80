"""tools/experiments/collect_table.py on hand-made result folders; every
expected number is worked out by hand in the comments."""
import csv
import json
import math
import os
import os.path as osp

import matplotlib.image as mpimg
import pytest

from _helpers import load_tool


def _load(name):
    return load_tool(f'tools/experiments/{name}.py')


collect_table = _load('collect_table')

TABLES = """
tables:
  hand:
    title: hand-made
    metric: pascal_voc/mAP
    metric_scale: 100
    config: configs/study/faster_rcnn_r18_raccoon.py
    scales: [cpu]
    baseline: base
    columns:
      - {key: a, name: A}
      - {key: b, name: B}
    rows:
      - {key: base, name: Baseline}
      - {key: up, name: Up}
      - {key: noisy, name: Noisy}
      - {key: broken, name: Broken}
"""
# paper: base 74.34 / 70.00; up printed as +1.42 relative to base (column a)
PAPER = """# comment lines are skipped
table,row,column,value,relative_to
hand,base,a,74.34,
hand,up,a,+1.42,base
hand,base,b,70.00,
hand,up,b,nan,
other,base,a,1.0,
"""


def _done(root, cell, seed, value, wall=10.0):
    path = osp.join(root, 'hand', cell, f'seed{seed}')
    os.makedirs(path)
    with open(osp.join(path, 'result.json'), 'w') as f:
        json.dump(dict(status='done', wall_s=wall,
                       metrics={'pascal_voc/mAP': value}), f)


def _scalars_only(root, cell, seed, value):
    """A run made without the runner (e.g. on a cluster)."""
    path = osp.join(root, 'hand', cell, f'seed{seed}', '20260101_000000',
                    'vis_data')
    os.makedirs(path)
    with open(osp.join(path, 'scalars.json'), 'w') as f:
        f.write(json.dumps({'lr': 0.01, 'loss': 1.0, 'iter': 10}) + '\n')
        f.write(json.dumps({'pascal_voc/mAP': value, 'step': 10}) + '\n')


@pytest.fixture
def folder(tmp_path):
    root = str(tmp_path / 'work_dirs')
    # column a: base 60, 62, 64 -> mean 62, std 2
    for seed, v in enumerate((0.60, 0.62, 0.64)):
        _done(root, 'base-a', seed, v)
    # up 63, 66, 66 (seed 2 from scalars.json) -> mean 65, std sqrt(3)
    _done(root, 'up-a', 0, 0.63)
    _done(root, 'up-a', 1, 0.66)
    _scalars_only(root, 'up-a', 2, 0.66)
    # noisy: 61, 61, 67 -> differences +1, -1, +3
    for seed, v in enumerate((0.61, 0.61, 0.67)):
        _done(root, 'noisy-a', seed, v)
    # broken: seed 0 failed with a NaN loss, seed 1 unfinished
    os.makedirs(osp.join(root, 'hand', 'broken-a', 'seed0'))
    with open(osp.join(root, 'hand', 'broken-a', 'seed0', 'result.json'),
              'w') as f:
        json.dump(dict(status='failed', reason='nan', wall_s=5.0), f)
    os.makedirs(osp.join(root, 'hand', 'broken-a', 'seed1'))
    # column b: base has one seed only, up one seed, the rest not run
    _done(root, 'base-b', 0, 0.50)
    _done(root, 'up-b', 0, 0.55)
    tables = tmp_path / 'tables.yaml'
    tables.write_text(TABLES)
    paper = tmp_path / 'paper.csv'
    paper.write_text(PAPER)
    return root, str(tables), str(paper)


def _records(folder):
    root, tables, paper = folder
    table = collect_table.load_table('hand', tables)
    values = collect_table.read_paper_values(paper, 'hand')
    return {r['cell']: r for r in collect_table.collect(table, root, values)}


def test_mean_std_delta_and_paired_test(folder):
    recs = _records(folder)
    base, up, noisy = recs['base-a'], recs['up-a'], recs['noisy-a']
    assert base['n'] == 3 and base['mean'] == pytest.approx(62.0)
    assert base['std'] == pytest.approx(2.0)
    assert base['verdict'] == 'baseline'
    assert up['n'] == 3 and up['mean'] == pytest.approx(65.0)
    assert up['std'] == pytest.approx(math.sqrt(3.0))
    assert up['delta'] == pytest.approx(3.0)
    # differences 3, 4, 2: mean 3, sd 1, t = 3 sqrt(3) = 5.196 with 2 df;
    # two-sided p = 1 - t / sqrt(t^2 + 2) = 1 - 5.196 / 5.385 = 0.0351
    assert up['n_pairs'] == 3 and up['n_higher'] == 3
    assert up['p_value'] == pytest.approx(0.0351, abs=2e-4)
    assert up['verdict'] == 'better'
    # differences 1, -1, 3: mean 1, sd 2, t = sqrt(3) / 2 = 0.866;
    # p = 1 - 0.866 / sqrt(0.75 + 2) = 0.478: within noise
    assert noisy['delta'] == pytest.approx(1.0)
    assert noisy['n_higher'] == 2
    assert noisy['p_value'] == pytest.approx(0.478, abs=1e-3)
    assert noisy['verdict'] == 'within noise'
    assert up['wall_s'] == pytest.approx(20.0)  # the third run has no record


def test_failed_unfinished_and_missing_cells_are_kept(folder):
    recs = _records(folder)
    broken = recs['broken-a']
    assert broken['n'] == 0 and broken['n_failed'] == 1
    assert broken['n_unfinished'] == 1
    assert broken['status'] == '1 failed (nan); 1 unfinished'
    assert broken['verdict'] == 'no data'
    assert recs['noisy-b']['status'] == 'not run'
    # one seed each: a difference but no test
    assert recs['up-b']['delta'] == pytest.approx(5.0)
    assert recs['up-b']['mean_diff'] == pytest.approx(5.0)
    assert recs['up-b']['verdict'] == 'n<2'
    assert len(recs) == 8


def test_paper_values_and_their_delta(folder):
    recs = _records(folder)
    assert recs['base-a']['paper'] == '74.34'
    assert float(recs['up-a']['paper']) == pytest.approx(75.76)
    assert recs['up-a']['paper_delta'] == pytest.approx(1.42)
    assert recs['up-b']['paper'] == 'nan'  # kept as printed
    assert math.isnan(recs['up-b']['paper_delta'])


def test_outputs(folder, tmp_path):
    root, tables, paper = folder
    out = str(tmp_path / 'out' / 'hand')
    rc = collect_table.main(['hand', '--work-dir', root, '--tables', tables,
                             '--paper-values', paper, '--out', out])
    assert rc == 0
    md = open(out + '.md').read()
    assert '| Up | 65.00 ± 1.73 (n=3) | +3.00 (paired +3.00: 3/3 seeds ' \
        'higher, p=0.035; better) | 75.76 (+1.42) |' in md
    assert '| Broken | 1 failed (nan); 1 unfinished | no data |' in md
    assert 'not run' in md
    with open(out + '.csv', newline='') as f:
        rows = {r['cell']: r for r in csv.DictReader(f)}
    assert len(rows) == 8
    assert float(rows['base-a']['std']) == pytest.approx(2.0)
    assert rows['base-a']['values'] == '0:60.00 1:62.00 2:64.00'
    assert rows['broken-a']['mean'] == ''
    assert mpimg.imread(out + '.png').shape[0] > 100


def test_unknown_table(folder, capsys):
    _, tables, _ = folder
    assert collect_table.main(['nope', '--tables', tables]) == 2
    assert "unknown table 'nope'" in capsys.readouterr().err


def test_weight_summary():
    # α = 1 until iteration 30, 0.2 at 30 (first change), 0.5 at 60
    its = [10, 20, 30, 40, 50, 60, 70]
    ratios = [1.0, 1.0, 0.2, 0.2, 0.2, 0.5, 0.5]
    assert collect_table.weight_summary(its, ratios) == dict(
        first_change_iter=30, first_ratio=0.2, final_ratio=0.5,
        min_ratio=0.2, max_ratio=1.0, n_changes=2)
    flat = collect_table.weight_summary([1, 2], [1.0, 1.0])
    assert flat['first_change_iter'] == '' and flat['n_changes'] == 0


def _collect(folder, out, *options):
    """Run the collector's command line on the hand-made table; its
    Markdown."""
    root, tables, paper = folder
    assert collect_table.main(['hand', '--work-dir', root, '--tables', tables,
                               '--paper-values', paper, '--out', out,
                               *options]) == 0
    return open(out + '.md').read()


def test_other_baseline(folder, tmp_path):
    root, tables, paper = folder
    md = _collect(folder, str(tmp_path / 'vs_up'), '--baseline', 'up')
    # base vs up: 60-63, 62-66, 64-66 = -3, -4, -2
    assert '| Baseline | 62.00 ± 2.00 (n=3) | -3.00 (paired -3.00: 0/3 ' \
        'seeds higher, p=0.035; worse) |' in md
    assert collect_table.main(['hand', '--tables', tables,
                               '--baseline', 'nope']) == 2


def test_rows_keeps_the_named_rows_and_their_baseline(folder, tmp_path):
    root, tables, paper = folder
    out = str(tmp_path / 'noisy_only')
    md = _collect(folder, out, '--rows', 'noisy')
    assert '| Baseline |' in md and '| Up |' not in md and \
        '| Broken |' not in md
    # differences 1, -1, 3 (worked out above): p = 0.478
    assert '| Noisy | 63.00 ± 3.46 (n=3) | +1.00 (paired +1.00: 2/3 ' \
        'seeds higher, p=0.48; within noise) |' in md
    assert {r['row'] for r in csv.DictReader(open(out + '.csv'))} == {
        'base', 'noisy'}
    assert collect_table.main(['hand', '--work-dir', root, '--tables', tables,
                               '--rows', 'nope']) == 2
