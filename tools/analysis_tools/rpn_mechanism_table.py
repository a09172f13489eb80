"""Mean over seeds of ``rpn_mechanism.py``'s figures, one row per cell.

Reads ``<root>/<cell>/seed*/<name>`` (the JSON files that
``tools/analysis_tools/rpn_mechanism.py --out`` wrote, default name
``mechanism.json``) and prints a Markdown table: seeds, and the mean over
them of the small classes' test-proposal recall, the objectness of their
positive anchors, their RoI positives per gt box (without the gt boxes the
sampler adds), their gt boxes without any positive anchor, the other
classes' test-proposal recall and the test proposals per image on each FPN
level.

Example::

    python tools/analysis_tools/rpn_mechanism_table.py work_dirs/small_demo
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

COLUMNS = [
    ('small proposal recall', lambda r: r['small']['proposal_recall']['test']),
    ('small objectness', lambda r: r['small']['objectness_of_positives']),
    ('small RoI positives / gt',
     lambda r: r['small']['roi_positives_per_gt_without_gt']),
    ('small gt without positive anchor',
     lambda r: r['small']['gts_without_positive_anchor']),
    ('other classes\' proposal recall', lambda r: _mean([
        v for c, v in r['proposal_recall']['test'].items()
        if c not in r['small_classes'] and v is not None])),
]


def _mean(values: List[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def load(root: str, name: str = 'mechanism.json') -> Dict[str, List[dict]]:
    """``{cell: [report of each seed]}`` under ``root``."""
    out: Dict[str, List[dict]] = {}
    for path in sorted(glob.glob(osp.join(root, '*', 'seed*', name))):
        cell = osp.basename(osp.dirname(osp.dirname(path)))
        with open(path) as f:
            out.setdefault(cell, []).append(json.load(f))
    return out


def summarize(reports: List[dict]) -> Dict[str, Optional[float]]:
    """Mean over the seeds' reports of each column and proposal level."""
    for rep in reports:
        if not rep.get('small'):
            raise ValueError('rpn_mechanism_table: a report has no small '
                             'classes; run rpn_mechanism.py with '
                             '--small-classes')
    row = {name: _mean([get(r) for r in reports if get(r) is not None])
           for name, get in COLUMNS}
    levels = len(reports[0]['proposals_per_level']['test'])
    for i in range(levels):
        row[f'proposals P{i + 2}'] = _mean(
            [r['proposals_per_level']['test'][i] for r in reports])
    return row


def to_markdown(table: Dict[str, List[dict]]) -> str:
    rows = {cell: summarize(reps) for cell, reps in table.items()}
    names = list(next(iter(rows.values())))
    lines = ['| cell | seeds | ' + ' | '.join(names) + ' |',
             '|---|---|' + '---|' * len(names)]
    for cell, row in rows.items():
        lines.append(f'| {cell} | {len(table[cell])} | ' + ' | '.join(
            '' if row[n] is None else f'{row[n]:.3f}' if 'proposals P'
            not in n else f'{row[n]:.1f}' for n in names) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('root', help='<root>/<cell>/seed<k>/<name>')
    p.add_argument('--name', default='mechanism.json')
    args = p.parse_args(argv)
    table = load(args.root, args.name)
    if not table:
        print(f'no {args.name} under {args.root}/*/seed*/', file=sys.stderr)
        return 1
    print(to_markdown(table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
