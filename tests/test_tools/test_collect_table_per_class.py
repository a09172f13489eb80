"""collect_table.py's per-class rows (issue 19) on hand-made run folders;
every expected number is worked out by hand in the comments."""
import csv
import json
import os
import os.path as osp

import pytest

from _helpers import load_tool

collect_table = load_tool('tools/experiments/collect_table.py')

TABLES = """
tables:
  small:
    title: small objects
    metric: coco/bbox_mAP_50
    metric_scale: 100
    config: configs/demo/faster_rcnn_r18_small_demo.py
    scales: [cpu]
    baseline: plain
    columns:
      - {key: demo, name: Demo}
    rows:
      - {key: plain, name: Plain}
      - {key: alwa, name: ALWA_1}
"""

# per seed: (disc AP50, disc recall, square AP50)
PLAIN = [(0.30, 0.80, 0.90), (0.40, 0.80, 0.90), (0.50, 0.90, 0.90)]
ALWA = [(0.10, 0.20, 0.92), (0.15, 0.30, 0.93), (0.20, 0.20, 0.94)]


def _metrics(disc_ap, disc_recall, square_ap):
    return {'coco/bbox_mAP_50': 0.5, 'coco/bbox_mAP': 0.3,
            'coco/disc_AP50': disc_ap, 'coco/disc_recall': disc_recall,
            'coco/square_AP50': square_ap,
            'coco/disc_precision': 0.05}  # CocoMetric's classwise AP


@pytest.fixture
def folder(tmp_path):
    root = str(tmp_path / 'work_dirs')
    for cell, seeds in (('plain', PLAIN), ('alwa', ALWA)):
        for seed, values in enumerate(seeds):
            path = osp.join(root, 'small', cell, f'seed{seed}')
            if cell == 'alwa' and seed == 2:
                # a run made without the runner: its scalars.json only
                vis = osp.join(path, '20260101_000000', 'vis_data')
                os.makedirs(vis)
                with open(osp.join(vis, 'scalars.json'), 'w') as f:
                    f.write(json.dumps({'loss': 1.0, 'iter': 10}) + '\n')
                    f.write(json.dumps(dict(_metrics(*values),
                                            step=10)) + '\n')
                continue
            os.makedirs(path)
            with open(osp.join(path, 'result.json'), 'w') as f:
                json.dump(dict(status='done', wall_s=1.0,
                               metrics=_metrics(*values)), f)
    # a failed run's per-class values are not counted
    path = osp.join(root, 'small', 'alwa', 'seed3')
    os.makedirs(path)
    with open(osp.join(path, 'result.json'), 'w') as f:
        json.dump(dict(status='failed', reason='nan', wall_s=1.0,
                       metrics=_metrics(0.9, 0.9, 0.9)), f)
    tables = tmp_path / 'tables.yaml'
    tables.write_text(TABLES)
    return root, str(tables)


def _records(folder):
    root, tables = folder
    table = collect_table.load_table('small', tables)
    return {(r['cell'], r['cls'], r['stat']): r
            for r in collect_table.collect_per_class(table, root)}


def test_per_class_key_pattern():
    got = collect_table.per_class_values({
        'coco/disc_AP50': 0.5, 'coco/my_class_recall': 0.25,
        'coco/square_precision': 0.125, 'coco/bbox_mAP_50': 0.9,
        'pascal_voc/AP50': 0.8, 'coco/ring_AP50': float('nan')})
    assert got == {('disc', 'AP50'): 0.5, ('my_class', 'recall'): 0.25,
                   ('square', 'precision'): 0.125}


def test_per_class_columns_and_paired_test(folder):
    recs = _records(folder)
    # one column: the cells are the rows; 2 cells x (disc AP50, recall,
    # precision; square AP50)
    assert len(recs) == 8
    base = recs[('plain', 'disc', 'AP50')]
    # 30, 40, 50: mean 40, std 10
    assert base['n'] == 3 and base['mean'] == pytest.approx(40.0)
    assert base['std'] == pytest.approx(10.0)
    assert base['verdict'] == 'baseline'
    ap = recs[('alwa', 'disc', 'AP50')]
    # 10, 15, 20 (seed 2 from scalars.json; the failed seed 3 left out):
    # mean 15, std 5; differences -20, -25, -30: mean -25, sd 5,
    # t = -25 / (5 / sqrt(3)) = -8.660 with 2 df; two-sided
    # p = 1 - |t| / sqrt(t^2 + 2) = 1 - 8.660 / 8.775 = 0.0131
    assert ap['n'] == 3 and ap['mean'] == pytest.approx(15.0)
    assert ap['std'] == pytest.approx(5.0)
    assert ap['delta'] == pytest.approx(-25.0)
    assert ap['n_pairs'] == 3 and ap['n_higher'] == 0
    assert ap['p_value'] == pytest.approx(0.0131, abs=2e-4)
    assert ap['verdict'] == 'worse'
    assert ap['stat_name'] == 'AP@0.5'
    rec = recs[('alwa', 'disc', 'recall')]
    # 20, 30, 20 vs 80, 80, 90: differences -60, -50, -70: mean -60,
    # sd 10, t = -60 / (10 / sqrt(3)) = -10.392; p = 1 - 10.392 / 10.488
    # = 0.0092
    assert rec['mean'] == pytest.approx(70 / 3)
    assert rec['delta'] == pytest.approx(-60.0)
    assert rec['p_value'] == pytest.approx(0.0092, abs=2e-4)
    assert rec['verdict'] == 'worse'
    sq = recs[('alwa', 'square', 'AP50')]
    # 92, 93, 94 vs 90, 90, 90: differences 2, 3, 4: t = 3 sqrt(3) = 5.196,
    # p = 1 - 5.196 / 5.385 = 0.0351: the large class gains
    assert sq['delta'] == pytest.approx(3.0)
    assert sq['n_higher'] == 3
    assert sq['p_value'] == pytest.approx(0.0351, abs=2e-4)
    assert sq['verdict'] == 'better'
    # the same value in every seed: no difference, p = 1
    coco = recs[('alwa', 'disc', 'precision')]
    assert coco['stat_name'] == 'AP@[.5:.95]'
    assert coco['mean'] == pytest.approx(5.0)
    assert coco['p_value'] == 1.0 and coco['verdict'] == 'within noise'


def test_per_class_outputs(folder, tmp_path):
    root, tables = folder
    out = str(tmp_path / 'out' / 'small')
    assert collect_table.main(['small', '--work-dir', root, '--tables',
                               tables, '--out', out]) == 0
    md = open(out + '_per_class.md').read()
    assert '| ALWA_1 | Demo | disc | AP@0.5 | 15.00 ± 5.00 (n=3) | -25.00 ' \
        '(paired -25.00: 0/3 seeds higher, p=0.013; worse) |' in md
    assert '| Plain | Demo | disc | recall | 83.33 ± 5.77 (n=3) |  |' in md
    with open(out + '_per_class.csv', newline='') as f:
        rows = [r for r in csv.DictReader(f)]
    assert len(rows) == 8
    row = [r for r in rows if r['cell'] == 'alwa'
           and r['cls'] == 'square' and r['stat'] == 'AP50'][0]
    assert float(row['mean']) == pytest.approx(93.0)
    assert row['values'] == '0:92.00 1:93.00 2:94.00'


def test_no_per_class_keys_no_file(tmp_path):
    root = str(tmp_path / 'w')
    path = osp.join(root, 'small', 'plain', 'seed0')
    os.makedirs(path)
    with open(osp.join(path, 'result.json'), 'w') as f:
        json.dump(dict(status='done', metrics={'coco/bbox_mAP_50': 0.5}), f)
    tables = tmp_path / 'tables.yaml'
    tables.write_text(TABLES)
    out = str(tmp_path / 'o' / 'small')
    assert collect_table.main(['small', '--work-dir', root, '--tables',
                               str(tables), '--out', out]) == 0
    assert not osp.exists(out + '_per_class.md')
