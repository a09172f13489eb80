"""tools/analysis_tools/rpn_mechanism_table.py: means over seeds of
hand-written reports."""
import json

import pytest

from _helpers import load_tool

tool = load_tool('tools/analysis_tools/rpn_mechanism_table.py')


def _report(small_recall, objectness, roi, without, recalls, levels):
    return dict(
        small_classes=['disc'],
        small=dict(proposal_recall=dict(test=small_recall),
                   objectness_of_positives=objectness,
                   roi_positives_per_gt_without_gt=roi,
                   gts_without_positive_anchor=without),
        proposal_recall=dict(test=dict(disc=small_recall, **recalls)),
        proposals_per_level=dict(test=levels))


def test_means_over_seeds(tmp_path, capsys):
    reports = {
        ('alwa1', 0): _report(0.2, 0.1, 1.0, 0.4, dict(sq=1.0, bar=0.5),
                              [90, 10, 0, 0]),
        ('alwa1', 1): _report(0.4, 0.3, 2.0, 0.4, dict(sq=0.5, bar=None),
                              [80, 20, 0, 0]),
        ('plain', 0): _report(0.6, 0.5, 3.0, 0.4, dict(sq=1.0, bar=1.0),
                              [92, 8, 0, 0]),
    }
    for (cell, seed), rep in reports.items():
        d = tmp_path / cell / f'seed{seed}'
        d.mkdir(parents=True)
        (d / 'mechanism.json').write_text(json.dumps(rep))
    table = tool.load(str(tmp_path))
    row = tool.summarize(table['alwa1'])
    assert row['small proposal recall'] == pytest.approx(0.3)
    assert row['small objectness'] == pytest.approx(0.2)
    assert row['small RoI positives / gt'] == pytest.approx(1.5)
    # seed 0: (1.0 + 0.5) / 2 = 0.75; seed 1: 0.5 (bar has no gt)
    assert row['other classes\' proposal recall'] == pytest.approx(0.625)
    assert row['proposals P2'] == 85 and row['proposals P3'] == 15
    assert tool.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith('| alwa1 | 2 | 0.300 | 0.200 | 1.500 | 0.400 '
                             '| 0.625 | 85.0 | 15.0 |')
    assert out[3].startswith('| plain | 1 | 0.600 |')
    assert tool.main([str(tmp_path / 'none')]) == 1
