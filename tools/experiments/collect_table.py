"""Collect a folder of runs of ``run_table.py`` into the paper's table.

For every cell of the table (``tools/experiments/tables.yaml``) it reads the
runs ``<work-dir>/<table>/<cell>/seed<k>/`` (``result.json``, or mmengine's
``scalars.json`` for runs made without the runner, e.g. on a cluster) and
writes, next to each other:

* ours: mean ± sample std (ddof=1) over the finished seeds, and n;
* Δ: our mean minus that of the cell's baseline (same column, or the
  table's ``baseline_column``), with a paired comparison over the seeds both
  finished: the mean of the per-seed differences, how many are > 0, and a
  two-sided paired t-test (scipy). A difference is
  called ``better`` / ``worse`` only when p < ``--alpha`` (default 0.05),
  else ``within noise`` (``n<2`` when fewer than two seeds pair up);
* the paper's value and its Δ to the paper's baseline
  (``tools/experiments/paper_values.csv``).

Per class: every validation key of a run of the form
``<prefix>/<class>_<stat>`` with ``<stat>`` one of ``AP50`` (AP@0.5),
``recall`` (recall at IoU 0.5) or ``precision`` (what mmdet's ``CocoMetric``
with ``classwise=True`` logs per class: AP@[.5:.95]) gives one more row per
cell, class and statistic, scaled as the table's metric, with the same
mean ± std and the same paired test against the baseline cell's value of
that class and statistic: ``<out>_per_class.md`` / ``.csv``, written when
any run logged one.

Cells with failed, unfinished or missing runs are listed with that status,
never dropped. Outputs: ``<out>.md``, ``<out>.csv``, ``<out>.png`` (bars with
error bars) and, with ``--weights``, ``<out>_weights.png`` (the logged
w_cls / w_reg of each balanced cell over the iterations, every seed) with
``<out>_weights.csv`` (per run: first change, final value, range).

Example::

    python tools/experiments/collect_table.py study --weights
"""
import argparse
import csv
import glob
import json
import math
import os
import os.path as osp
import re
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from table_spec import (PAPER_VALUES_FILE, REPO_ROOT,  # noqa: E402
                        TABLES_FILE, Cell, Table, load_table)


@dataclass
class CellResult:
    cell: Cell
    values: Dict[int, float] = field(default_factory=dict)  # seed -> metric
    failed: Dict[int, str] = field(default_factory=dict)  # seed -> reason
    incomplete: List[int] = field(default_factory=list)
    wall_s: float = 0.0
    # (class, stat) -> {seed: value}, from the finished seeds' records
    per_class: Dict[Tuple[str, str], Dict[int, float]] = field(
        default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values \
            else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if self.n >= 2 \
            else math.nan

    @property
    def status(self) -> str:
        if not (self.values or self.failed or self.incomplete):
            return 'not run'
        parts = []
        if self.failed:
            reasons = sorted(set(self.failed.values()))
            parts.append(f'{len(self.failed)} failed ({", ".join(reasons)})')
        if self.incomplete:
            parts.append(f'{len(self.incomplete)} unfinished')
        return '; '.join(parts) if parts else 'done'


@dataclass
class Comparison:
    delta: float  # mean(cell) - mean(baseline)
    n_pairs: int
    n_higher: int
    mean_diff: float  # mean of the paired differences
    p_value: float
    verdict: str


# <prefix>/<class>_<stat>: the per-class keys of a validation record
PER_CLASS_KEY = re.compile(r'^[^/]+/(?P<cls>.+)_(?P<stat>AP50|recall|'
                           r'precision)$')
PER_CLASS_STATS = {'AP50': 'AP@0.5', 'recall': 'recall',
                   'precision': 'AP@[.5:.95]'}


def _record_from_scalars(run_dir: str, metric: str) -> Optional[dict]:
    """The last record of the run's ``scalars.json`` holding ``metric``."""
    record = None
    for path in sorted(glob.glob(osp.join(run_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    if metric in rec:
                        record = rec
    return record


def _metric_from_scalars(run_dir: str, metric: str) -> Optional[float]:
    record = _record_from_scalars(run_dir, metric)
    return None if record is None else float(record[metric])


def per_class_values(metrics: Dict[str, float]) -> Dict[Tuple[str, str],
                                                          float]:
    """``{(class, stat): value}`` of the finite per-class keys of one
    validation record (:data:`PER_CLASS_KEY`)."""
    out = {}
    for key, value in metrics.items():
        match = PER_CLASS_KEY.match(key)
        if match and isinstance(value, (int, float)) \
                and math.isfinite(float(value)):
            out[(match['cls'], match['stat'])] = float(value)
    return out


def read_cell(work_root: str, table: Table, cell: Cell) -> CellResult:
    res = CellResult(cell)
    for run_dir in sorted(glob.glob(osp.join(work_root, table.name, cell.key,
                                             'seed*'))):
        try:
            seed = int(osp.basename(run_dir)[4:])
        except ValueError:
            continue
        result = None
        if osp.exists(osp.join(run_dir, 'result.json')):
            with open(osp.join(run_dir, 'result.json')) as f:
                result = json.load(f)
            res.wall_s += float(result.get('wall_s', 0.0))
        if result is not None and result.get('status') == 'failed':
            res.failed[seed] = str(result.get('reason', 'failed'))
            continue
        if result is not None and result.get('status') == 'done':
            metrics = result['metrics']
        else:
            metrics = _record_from_scalars(run_dir, cell.metric) or {}
        value = metrics.get(cell.metric)
        if value is None:
            res.incomplete.append(seed)
        elif not math.isfinite(float(value)):
            res.failed[seed] = 'nan'
        else:
            res.values[seed] = float(value) * table.metric_scale
            for key, v in per_class_values(metrics).items():
                res.per_class.setdefault(key, {})[seed] = \
                    v * table.metric_scale
    return res


def compare(res: CellResult, base: CellResult, alpha: float) -> Comparison:
    """``res`` against ``base``: Δ of the means and a paired t-test over the
    seeds both finished."""
    seeds = sorted(set(res.values) & set(base.values))
    diffs = [res.values[s] - base.values[s] for s in seeds]
    delta = res.mean - base.mean
    n_higher = sum(d > 0 for d in diffs)
    mean_diff = statistics.fmean(diffs) if diffs else math.nan
    if len(diffs) < 2:
        return Comparison(delta, len(diffs), n_higher, mean_diff, math.nan,
                          'n<2')
    sd = statistics.stdev(diffs)
    if sd == 0:  # identical differences: the t statistic is ±inf or 0/0
        p = 1.0 if mean_diff == 0 else 0.0
    else:
        from scipy import stats
        p = float(stats.ttest_rel(
            [res.values[s] for s in seeds],
            [base.values[s] for s in seeds]).pvalue)
    if p < alpha:
        verdict = 'better' if mean_diff > 0 else 'worse'
    else:
        verdict = 'within noise'
    return Comparison(delta, len(diffs), n_higher, mean_diff, p, verdict)


def read_paper_values(path: str, table: str) -> Dict[Tuple[str, str], str]:
    """``{(row, column): value as printed}``; numbers relative to another row
    (``relative_to``, Table 1's deltas) are made absolute."""
    with open(path, newline='') as f:
        rows = [r for r in csv.DictReader(
            line for line in f if not line.startswith('#'))
            if r['table'] == table]
    out = {(r['row'], r['column']): r['value'] for r in rows}
    for r in rows:
        base = r.get('relative_to')
        if base:
            out[(r['row'], r['column'])] = str(round(
                float(out[(base, r['column'])]) + float(r['value']), 4))
    return out


def _num(text: Optional[str]) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _fmt(x: float, digits: int = 2, sign: bool = False) -> str:
    if not math.isfinite(x):
        return '–'
    return f'{x:+.{digits}f}' if sign else f'{x:.{digits}f}'


def collect(table: Table, work_root: str, paper: Dict[Tuple[str, str], str],
            alpha: float = 0.05) -> List[dict]:
    """One record per cell, in the table's row then column order."""
    results = {c.key: read_cell(work_root, table, c) for c in table.cells}
    records = []
    for cell in table.cells:
        res = results[cell.key]
        rec = dict(table=table.name, row=cell.row, column=cell.column,
                   cell=cell.key, status=res.status, n=res.n,
                   n_failed=len(res.failed), n_unfinished=len(res.incomplete),
                   mean=res.mean, std=res.std,
                   values=' '.join(f'{s}:{v:.2f}'
                                   for s, v in sorted(res.values.items())),
                   wall_s=round(res.wall_s, 1), baseline=cell.baseline or '',
                   delta=math.nan, n_pairs=0, n_higher=0, mean_diff=math.nan,
                p_value=math.nan,
                   verdict='baseline' if cell.baseline is None else '',
                   paper=paper.get((cell.row, cell.column), ''),
                   paper_delta=math.nan)
        if cell.baseline is not None:
            base_cell = table.cell_by_key(cell.baseline)
            base = results[base_cell.key]
            if res.n and base.n:
                cmp = compare(res, base, alpha)
                rec.update(delta=cmp.delta, n_pairs=cmp.n_pairs,
                           n_higher=cmp.n_higher, mean_diff=cmp.mean_diff,
                           p_value=cmp.p_value,
                           verdict=cmp.verdict)
            else:
                rec['verdict'] = 'no data'
            rec['paper_delta'] = _num(rec['paper']) - _num(
                paper.get((base_cell.row, base_cell.column)))
        records.append(rec)
    return records


def collect_per_class(table: Table, work_root: str,
                      alpha: float = 0.05) -> List[dict]:
    """One record per cell, class and statistic logged by any of the table's
    runs (:data:`PER_CLASS_KEY`), with the cell's mean ± std over seeds and
    the paired test (:func:`compare`) against the same class and statistic
    of the baseline cell; in the table's order, then by class and stat."""
    results = {c.key: read_cell(work_root, table, c) for c in table.cells}
    keys = sorted({k for r in results.values() for k in r.per_class},
                  key=lambda k: (k[0], list(PER_CLASS_STATS).index(k[1])))
    records = []
    for cell in table.cells:
        for cls, stat in keys:
            res = CellResult(cell, values=dict(
                results[cell.key].per_class.get((cls, stat), {})))
            rec = dict(table=table.name, row=cell.row, column=cell.column,
                       cell=cell.key, cls=cls, stat=stat,
                       stat_name=PER_CLASS_STATS[stat],
                       status='done' if res.n else 'not logged', n=res.n,
                       mean=res.mean, std=res.std,
                       values=' '.join(f'{s}:{v:.2f}'
                                       for s, v in sorted(res.values.items())),
                       baseline=cell.baseline or '', delta=math.nan,
                       n_pairs=0, n_higher=0, mean_diff=math.nan,
                       p_value=math.nan,
                       verdict='baseline' if cell.baseline is None else '')
            if cell.baseline is not None:
                base = CellResult(table.cell_by_key(cell.baseline),
                                  values=dict(results[cell.baseline]
                                              .per_class.get((cls, stat),
                                                             {})))
                if res.n and base.n:
                    cmp = compare(res, base, alpha)
                    rec.update(delta=cmp.delta, n_pairs=cmp.n_pairs,
                               n_higher=cmp.n_higher,
                               mean_diff=cmp.mean_diff,
                               p_value=cmp.p_value, verdict=cmp.verdict)
                else:
                    rec['verdict'] = 'no data'
            records.append(rec)
    return records


def per_class_markdown(table: Table, records: List[dict]) -> str:
    names = {r['key']: r.get('name', r['key']) for r in table.rows}
    columns = {c['key']: c.get('name', c['key']) for c in table.columns}
    lines = [f'**{table.title}: per class**', '',
             f'Scaled as {table.metric_name}; ours = mean ± std over seeds '
             f'(n logged); Δ: paired t-test against the baseline cell\'s '
             f'value of the same class.', '',
             '| row | column | class | statistic | ours | '
             'Δ vs baseline (paired) |', '|---|---|---|---|---|---|']
    for rec in records:
        lines.append('| ' + ' | '.join([
            names[rec['row']], columns[rec['column']], rec['cls'],
            rec['stat_name'], _ours_text(rec), _delta_text(rec)]) + ' |')
    return '\n'.join(lines) + '\n'


PER_CLASS_CSV_FIELDS = ('table', 'row', 'column', 'cell', 'cls', 'stat',
                        'stat_name', 'status', 'n', 'mean', 'std', 'values',
                        'baseline', 'delta', 'n_pairs', 'n_higher',
                        'mean_diff', 'p_value', 'verdict')


def _ours_text(rec: dict) -> str:
    if rec['n'] == 0:
        return rec['status']
    text = f'{_fmt(rec["mean"])} ± {_fmt(rec["std"])} (n={rec["n"]})'
    return text if rec['status'] == 'done' else f'{text}; {rec["status"]}'


def _delta_text(rec: dict) -> str:
    if rec['verdict'] in ('baseline', 'no data'):
        return rec['verdict'] if rec['verdict'] == 'no data' else ''
    text = _fmt(rec['delta'], sign=True)
    if rec['n_pairs']:
        text += (f' (paired {_fmt(rec["mean_diff"], sign=True)}: '
                 f'{rec["n_higher"]}/{rec["n_pairs"]} seeds higher')
        if math.isfinite(rec['p_value']):
            text += f', p={rec["p_value"]:.2g}'
        text += f'; {rec["verdict"]})'
    return text


def _paper_text(rec: dict) -> str:
    if not rec['paper']:
        return ''
    if math.isfinite(rec['paper_delta']):
        return f'{rec["paper"]} ({_fmt(rec["paper_delta"], sign=True)})'
    return rec['paper']


def to_markdown(table: Table, records: List[dict]) -> str:
    by_cell = {(r['row'], r['column']): r for r in records}
    header = ['']
    for col in table.columns:
        name = col.get('name', col['key'])
        header += [f'{name}: ours', 'Δ vs baseline (paired)', 'paper']
    lines = [f'**{table.title}**', '',
             f'Metric: {table.metric_name}; ours = mean ± std over seeds '
             f'(n finished).', '',
             '| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for row in table.rows:
        cells = [row.get('name', row['key'])]
        for col in table.columns:
            rec = by_cell[(row['key'], col['key'])]
            cells += [_ours_text(rec), _delta_text(rec), _paper_text(rec)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


CSV_FIELDS = ('table', 'row', 'column', 'cell', 'status', 'n', 'n_failed',
              'n_unfinished', 'mean', 'std', 'values', 'baseline', 'delta',
              'n_pairs', 'n_higher', 'mean_diff', 'p_value', 'verdict',
              'paper',
              'paper_delta', 'wall_s')


def write_csv(records: List[dict], path: str,
              fields: Tuple[str, ...] = CSV_FIELDS) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for rec in records:
            writer.writerow({k: (round(v, 4) if isinstance(v, float)
                                 and math.isfinite(v) else
                                 ('' if isinstance(v, float) else v))
                             for k, v in rec.items() if k in fields})


def plot_bars(table: Table, records: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_cell = {(r['row'], r['column']): r for r in records}
    ncols = len(table.columns)
    fig, axes = plt.subplots(1, ncols, squeeze=False,
                             figsize=(max(5.0, 0.55 * len(table.rows) + 2)
                                      * ncols, 4.5))
    for ax, col in zip(axes[0], table.columns):
        recs = [by_cell[(r['key'], col['key'])] for r in table.rows]
        xs = range(len(recs))
        means = [r['mean'] if r['n'] else 0.0 for r in recs]
        errs = [r['std'] if math.isfinite(r['std']) else 0.0 for r in recs]
        colors = ['0.55' if r['verdict'] == 'baseline' else
                  {'better': 'tab:green', 'worse': 'tab:red'}.get(
                      r['verdict'], 'tab:blue') for r in recs]
        ax.bar(xs, means, yerr=errs, capsize=3, color=colors)
        for x, r in zip(xs, recs):
            if r['n']:
                for v in [float(t.split(':')[1])
                          for t in r['values'].split()]:
                    ax.plot(x, v, 'k.', ms=3)
            if r['status'] != 'done':
                ax.annotate(r['status'], (x, 0), rotation=90, ha='center',
                            va='bottom', fontsize=7, color='tab:red')
        base = [r for r in recs if r['verdict'] == 'baseline' and r['n']]
        if base:
            ax.axhline(base[0]['mean'], color='0.4', ls='--', lw=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r.get('name', r['key']) for r in table.rows],
                           rotation=60, ha='right', fontsize=7)
        ax.set_title(col.get('name', col['key']), fontsize=9)
        ax.set_ylabel(table.metric_name)
        finite = [m for r, m in zip(recs, means) if r['n']]
        if finite:
            spread = max(errs) if errs else 0.0
            ax.set_ylim(max(0.0, min(finite) - 3 * spread - 2),
                        max(finite) + 3 * spread + 2)
    fig.suptitle(f'{table.name}: mean ± std over seeds (dots: seeds); '
                 'green/red: paired t-test p < alpha', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _weight_series(run_dir: str) -> Optional[Tuple[str, list, list]]:
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    from plot_loss_weights import find_name, load_scalars
    try:
        records = load_scalars(run_dir)
    except FileNotFoundError:
        return None
    name = find_name(records)
    if name is None:
        return None
    its, ratios = [], []
    for it in sorted(records):
        rec = records[it]
        cls, reg = rec.get(f'{name}/weight_cls'), rec.get(f'{name}/weight_reg')
        if cls is not None and reg:
            its.append(it)
            ratios.append(cls / reg)
    return name, its, ratios


def weight_summary(its: List[int], ratios: List[float]) -> dict:
    """Where a logged w_cls / w_reg trajectory first left its initial value,
    where it ended, its range and how often it changed."""
    changes = [i for i in range(1, len(ratios))
               if not math.isclose(ratios[i], ratios[i - 1], rel_tol=1e-9)]
    first = changes[0] if changes else None
    return dict(first_change_iter=its[first] if first is not None else '',
                first_ratio=ratios[first] if first is not None else '',
                final_ratio=ratios[-1], min_ratio=min(ratios),
                max_ratio=max(ratios), n_changes=len(changes))


def plot_weights(table: Table, work_root: str, path: str) -> List[str]:
    """w_cls / w_reg over the iterations, one panel per balanced cell, one
    line per seed, and their summary (:func:`weight_summary`) as
    ``<path without .png>.csv``; returns the cells drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series = {}
    for cell in table.cells:
        runs = []
        for run_dir in sorted(glob.glob(osp.join(work_root, table.name,
                                                 cell.key, 'seed*'))):
            got = _weight_series(run_dir)
            if got is not None and got[1]:
                runs.append((osp.basename(run_dir), got))
        if runs:
            series[cell.key] = runs
    if not series:
        return []
    with open(osp.splitext(path)[0] + '.csv', 'w', newline='') as f:
        writer = None
        for key, runs in series.items():
            for seed, (name, its, ratios) in runs:
                row = dict(cell=key, run=seed, hook=name,
                           **weight_summary(its, ratios))
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow({k: round(v, 5) if isinstance(v, float)
                                 else v for k, v in row.items()})
    n = len(series)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharex=True,
                             figsize=(4.2 * ncols, 2.8 * nrows))
    for ax, (key, runs) in zip(axes.flat, series.items()):
        for seed, (name, its, ratios) in runs:
            ax.plot(its, ratios, lw=1, label=seed)
        ax.set_yscale('log')
        ax.set_title(key, fontsize=9)
        ax.set_ylabel('w_cls / w_reg', fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    for ax in axes[-1]:
        ax.set_xlabel('iteration')
    fig.suptitle(f'{table.name}: loss-weight ratio of the balanced head '
                 '(ALWA: α)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return list(series)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Collect the runs of a table into Markdown, CSV and PNG')
    parser.add_argument('table', help='a table of the tables file')
    parser.add_argument('--work-dir', default=osp.join(REPO_ROOT,
                                                       'work_dirs'),
                        help='root of <table>/<cell>/seed<k>/')
    parser.add_argument('--tables', default=TABLES_FILE)
    parser.add_argument('--scale', default=None,
                        help='the scale the runs were made at (its profile '
                        'may score another metric)')
    parser.add_argument('--paper-values', default=PAPER_VALUES_FILE)
    parser.add_argument('--out', default=None,
                        help='output prefix (default '
                        '<work-dir>/<table>/<table>)')
    parser.add_argument('--baseline', default=None, metavar='ROW',
                        help='compare every cell with this row (same '
                        'column) instead of the table\'s baselines')
    parser.add_argument('--rows', nargs='+', default=None, metavar='ROW',
                        help='report only these rows (and their baselines)')
    parser.add_argument('--alpha', type=float, default=0.05,
                        help='significance level of the paired t-test')
    parser.add_argument('--weights', action='store_true',
                        help='also plot the logged loss weights')
    return parser.parse_args(argv)


def select_rows(table, rows: List[str]) -> None:
    """Keep only ``rows`` of ``table`` and the rows their cells are
    compared with (``KeyError`` for a row the table does not have)."""
    known = [r['key'] for r in table.rows]
    unknown = [r for r in rows if r not in known]
    if unknown:
        raise KeyError(f'table {table.name} has no row {unknown}; its rows: '
                       f'{known}')
    keep = set(rows)
    for cell in table.cells:
        if cell.row in keep and cell.baseline:
            keep.add(table.cell_by_key(cell.baseline).row)
    table.rows = [r for r in table.rows if r['key'] in keep]
    table.cells = [c for c in table.cells if c.row in keep]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        table = load_table(args.table, args.tables, args.scale)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.baseline is not None:
        try:
            for cell in table.cells:
                base = table.cell(args.baseline, cell.column).key
                cell.baseline = None if base == cell.key else base
        except KeyError as e:
            print(f'error: --baseline: {e}', file=sys.stderr)
            return 2
    if args.rows is not None:
        try:
            select_rows(table, args.rows)
        except KeyError as e:
            print(f'error: --rows: {e}', file=sys.stderr)
            return 2
    paper = read_paper_values(args.paper_values, table.name) \
        if osp.exists(args.paper_values) else {}
    records = collect(table, args.work_dir, paper, args.alpha)
    out = args.out or osp.join(args.work_dir, table.name, table.name)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    markdown = to_markdown(table, records)
    with open(out + '.md', 'w') as f:
        f.write(markdown)
    write_csv(records, out + '.csv')
    plot_bars(table, records, out + '.png')
    written = [out + ext for ext in ('.md', '.csv', '.png')]
    per_class = collect_per_class(table, args.work_dir, args.alpha)
    if per_class:
        per_class_md = per_class_markdown(table, per_class)
        with open(out + '_per_class.md', 'w') as f:
            f.write(per_class_md)
        write_csv(per_class, out + '_per_class.csv', PER_CLASS_CSV_FIELDS)
        written += [out + '_per_class.md', out + '_per_class.csv']
        markdown += '\n' + per_class_md
    if args.weights and plot_weights(table, args.work_dir,
                                     out + '_weights.png'):
        written += [out + '_weights.png', out + '_weights.csv']
    print(markdown)
    print('wrote ' + ', '.join(written))
    return 0


if __name__ == '__main__':
    sys.exit(main())
