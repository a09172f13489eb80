"""Tables of experiments as data: cells (config + overrides) x seeds.

The format is described at the top of ``tools/experiments/tables.yaml``;
:func:`load_table` reads one table, :func:`build_cell_config` makes the
config of one (cell, seed) at a scale. Used by ``run_table.py`` and
``collect_table.py``.
"""
import copy
import functools
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import yaml

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TABLES_FILE = osp.join(REPO_ROOT, 'tools', 'experiments', 'tables.yaml')
PAPER_VALUES_FILE = osp.join(REPO_ROOT, 'tools', 'experiments',
                             'paper_values.csv')
#: what `data_from` copies from another config
DATA_KEYS = ('data_root', 'demo_data', 'train_dataloader', 'val_dataloader',
             'test_dataloader', 'val_evaluator', 'test_evaluator')


@dataclass
class Cell:
    """One cell of a table: what to train and how to score it."""
    key: str  # folder name under work_dirs/<table>/
    row: str  # row key
    column: str  # column key
    config: str  # path relative to the repository
    cfg_options: Dict[str, Any]
    metric: str
    baseline: Optional[str]  # key of the cell compared with; None: itself


@dataclass
class Table:
    name: str
    title: str
    metric_name: str
    metric_scale: float
    scales: List[str]
    rows: List[dict]
    columns: List[dict]
    cells: List[Cell]
    profiles: Dict[str, dict] = field(default_factory=dict)
    gpus: int = 8

    def cell(self, row: str, column: str) -> Cell:
        for cell in self.cells:
            if cell.row == row and cell.column == column:
                return cell
        raise KeyError(f'no cell ({row!r}, {column!r}) in table {self.name}')

    def cell_by_key(self, key: str) -> Cell:
        for cell in self.cells:
            if cell.key == key:
                return cell
        raise KeyError(f'no cell {key!r} in table {self.name}')


def _merge(*dicts: Optional[dict]) -> dict:
    """Later dicts win key by key (dotted keys are kept as they are)."""
    out: Dict[str, Any] = {}
    for d in dicts:
        out.update(copy.deepcopy(d or {}))
    return out


def _check_keys(what: str, entries: Sequence[dict]) -> None:
    keys = [e.get('key') for e in entries]
    if not entries or any(not isinstance(k, str) or not k for k in keys):
        raise ValueError(f'{what}: every entry needs a non-empty "key"')
    if len(set(keys)) != len(keys):
        raise ValueError(f'{what}: duplicate keys {keys}')
    bad = [k for k in keys if not all(c.isalnum() or c in '._' for c in k)]
    if bad:
        raise ValueError(f'{what}: keys must be letters, digits, "." or "_" '
                         f'(they name folders), got {bad}')


def table_names(tables_file: str = TABLES_FILE) -> List[str]:
    with open(tables_file) as f:
        return list(yaml.safe_load(f)['tables'])


def load_table(name: str, tables_file: str = TABLES_FILE,
               scale: Optional[str] = None) -> Table:
    """Read table ``name`` of ``tables_file`` and expand its cells.

    A cell is compared with the cell of its row's ``baseline`` row (default:
    the table's ``baseline``) in its column or, when the table names a
    ``baseline_column``, with that column's cell of its row. A ``metric`` in
    the profile of ``scale`` replaces the cells' (other data, other
    evaluator).
    """
    with open(tables_file) as f:
        data = yaml.safe_load(f)
    tables = data.get('tables', {})
    if name not in tables:
        raise ValueError(f'unknown table {name!r}; {tables_file} has '
                         f'{sorted(tables)}')
    spec = tables[name]
    rows, columns = spec.get('rows', []), spec.get('columns', [])
    _check_keys(f'table {name} rows', rows)
    _check_keys(f'table {name} columns', columns)
    row_keys = [r['key'] for r in rows]
    base_col = spec.get('baseline_column')
    if base_col is not None and base_col not in [c['key'] for c in columns]:
        raise ValueError(f'table {name}: baseline_column {base_col!r} is not '
                         f'a column')
    profile_metric = spec.get('profiles', {}).get(scale, {}).get('metric')
    key_of = (lambda r, c: r) if len(columns) == 1 else \
        (lambda r, c: f'{r}-{c}')
    cells = []
    for row in rows:
        base_row = row.get('baseline', spec.get('baseline'))
        if base_row is not None and base_row not in row_keys:
            raise ValueError(f'table {name}: baseline {base_row!r} of row '
                             f'{row["key"]!r} is not a row')
        for col in columns:
            variables = _merge(spec.get('vars'), row.get('vars'),
                               col.get('vars'))
            template = col.get('config', row.get('config',
                                                 spec.get('config')))
            if template is None:
                raise ValueError(f'table {name}: no config for cell '
                                 f'({row["key"]}, {col["key"]})')
            try:
                config = template.format(**variables)
            except KeyError as e:
                raise ValueError(f'table {name}: config {template!r} needs '
                                 f'the variable {e}') from None
            key = key_of(row['key'], col['key'])
            if base_col is not None:
                baseline = key_of(row['key'], base_col)
            elif base_row is not None:
                baseline = key_of(base_row, col['key'])
            else:
                baseline = None
            cells.append(Cell(
                key=key, row=row['key'], column=col['key'], config=config,
                cfg_options=_merge(spec.get('cfg_options'),
                                   row.get('cfg_options'),
                                   col.get('cfg_options')),
                metric=profile_metric or col.get('metric', spec['metric']),
                baseline=None if baseline == key else baseline))
    return Table(
        name=name, title=spec.get('title', name),
        metric_name=spec.get('metric_name', spec['metric']),
        metric_scale=float(spec.get('metric_scale', 1.0)),
        scales=list(spec.get('scales', ['paper'])), rows=rows,
        columns=columns, cells=cells,
        profiles={s: p for s, p in spec.get('profiles', {}).items()},
        gpus=int(spec.get('gpus', 8)))


@functools.lru_cache(maxsize=None)
def _parse(path: str):
    from mmengine.config import Config
    return Config.fromfile(path)


def load_config(rel_path: str):
    """A fresh copy of the config at ``rel_path`` (parsed once)."""
    path = osp.join(REPO_ROOT, rel_path)
    if not osp.exists(path):
        raise ValueError(f'config {rel_path!r} does not exist')
    return copy.deepcopy(_parse(path))


def check_override_keys(cfg, options: dict, where: str) -> None:
    """A scalar or list override must replace a key the config has (a typo
    would otherwise add a key nothing reads); a dict may add a new one."""
    for key, value in options.items():
        node = cfg
        parts = key.split('.')
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, (list, tuple)) and part.isdigit() and \
                    int(part) < len(node):
                node = node[int(part)]
            elif not isinstance(node, (list, tuple, str)) and \
                    hasattr(node, 'keys') and part in node:  # Config too
                node = node[part]
            elif last and isinstance(value, dict):
                break
            else:
                raise ValueError(
                    f'{where}: override {key!r} names no key of the config '
                    f'({".".join(parts[:i + 1])!r} is missing); only a dict '
                    f'value may add one')
            if node is None and not last:
                break


def build_cell_config(table: Table, cell: Cell, scale: str, seed: int,
                      work_dir: str, extra_options: Optional[dict] = None):
    """The mmengine ``Config`` of ``cell`` at ``scale`` with ``seed``.

    Order: the cell's config file, the scale profile (``data_from`` then its
    ``cfg_options``), the cell's ``cfg_options``, ``extra_options`` (the
    command line's), then seed and work_dir.
    """
    if scale not in table.scales:
        raise ValueError(f'table {table.name} runs at the scales '
                         f'{table.scales}, not {scale!r}')
    cfg = load_config(cell.config)
    profile = table.profiles.get(scale, {})
    if profile.get('data_from'):
        source = load_config(profile['data_from'])
        for key in DATA_KEYS:
            if key in source:
                cfg[key] = copy.deepcopy(source[key])
            elif key in cfg:
                cfg.pop(key)
    for where, options in ((f'profile {scale}', profile.get('cfg_options')),
                           (f'cell {cell.key}', cell.cfg_options),
                           ('--cfg-options', extra_options)):
        if options:
            check_override_keys(cfg, options, f'table {table.name}, {where}')
            cfg.merge_from_dict(copy.deepcopy(options))
    for name, hook in (cfg.get('default_hooks') or {}).items():
        if hook is not None and 'type' not in hook:
            raise ValueError(
                f'table {table.name}, cell {cell.key}: default_hooks.{name} '
                f'has no type; its overrides {dict(hook)} need a config '
                f'{cell.config} that defines default_hooks.{name}')
    cfg.randomness = dict(seed=int(seed), deterministic=False)
    cfg.work_dir = work_dir
    return cfg
