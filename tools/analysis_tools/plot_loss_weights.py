"""Plot the loss weights logged by ``LossWeightingHook`` (the paper's Fig. 3).

Reads every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (one JSON object
per logged training iteration; a resumed run adds a timestamp folder, later
ones win on repeated iterations) and draws, for the hook named ``--name``:

* top: α (ALWA) or each ``weight_<task>`` (other rules) over iterations;
* middle (ALWA): mean and std of the weighted L_cls and L_reg of each window;
  (gradient aggregation: UPGrad, MGDA...): the pairwise cosines
  ``cos_<a>_<b>`` of the task gradients at the shared representation, and
  on a second axis their squared norms ``sqnorm_<task>`` (log scale);
* bottom, when validation logged per-class AP@0.5 (``<prefix>/<class>_AP50``,
  e.g. ``PerClassAPMetric``): each class's AP@0.5 at each validation, at the
  iteration it followed, beside α; the text output lists them with α.

The curves have one point per *logged* iteration, so log at least once per
window (``default_hooks.logger.interval <= C``).

Example::

    python tools/analysis_tools/plot_loss_weights.py work_dirs/faster_rcnn_r50_alwa1_voc
"""
import argparse
import glob
import json
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

WINDOW_KEYS = ('cls_mean', 'cls_std', 'reg_mean', 'reg_std')
# <prefix>/<class>_AP50: the per-class AP@0.5 of a validation record (the
# keys tools/experiments/collect_table.py reads)
PER_CLASS_AP = re.compile(r'^[^/]+/(?P<cls>.+)_AP50$')


def _scalar_files(work_dir: str) -> List[str]:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir!r}: is it the '
            f'work_dir of an mmengine training run?')
    return files


def load_scalars(work_dir: str) -> Dict[int, dict]:
    """``{iter: {key: value}}`` of the training records of a work_dir."""
    records: Dict[int, dict] = {}
    for path in _scalar_files(work_dir):  # timestamped: chronological
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                if 'iter' in rec and 'lr' in rec:  # train, not val records
                    records.setdefault(int(rec['iter']), {}).update(rec)
    return records


def load_val_records(work_dir: str) -> List[Tuple[int, dict]]:
    """``(iteration, record)`` of each validation record of a work_dir.
    mmengine writes a validation's scalars right after the training records
    of the iteration it followed, with ``step`` = the epoch (epoch-based
    loops): the iteration is that of the last training record before it."""
    out: List[Tuple[int, dict]] = []
    for path in _scalar_files(work_dir):
        last_iter = 0
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                if 'iter' in rec and 'lr' in rec:
                    last_iter = int(rec['iter'])
                elif any(PER_CLASS_AP.match(k) for k in rec):
                    out.append((last_iter, rec))
    return out


def per_class_ap(val_records: List[Tuple[int, dict]]
                 ) -> Dict[str, Tuple[List[int], List[float]]]:
    """``{class: (iterations, AP@0.5)}`` over the validation records."""
    out: Dict[str, Tuple[List[int], List[float]]] = {}
    for it, rec in val_records:
        for key, value in rec.items():
            m = PER_CLASS_AP.match(key)
            if m:
                its, values = out.setdefault(m.group('cls'), ([], []))
                its.append(it)
                values.append(float(value))
    return out


def alpha_at(records: Dict[int, dict], name: str, it: int) -> Optional[float]:
    """The weight (α, or None for rules without one) logged last at or
    before iteration ``it``."""
    its, values = series(records, f'{name}/alpha')
    before = [v for i, v in zip(its, values) if i <= it]
    return before[-1] if before else None


def per_class_lines(records: Dict[int, dict], name: str,
                    val_records: List[Tuple[int, dict]]) -> List[str]:
    """One line per validation: iteration, α, each class's AP@0.5."""
    lines = []
    for it, rec in val_records:
        aps = [(m.group('cls'), v) for k, v in rec.items()
               for m in [PER_CLASS_AP.match(k)] if m]
        alpha = alpha_at(records, name, it)
        head = f'iter {it}: ' + (f'alpha {alpha:.3f}; ' if alpha is not None
                                 else '')
        lines.append(head + 'AP@0.5 ' + ', '.join(
            f'{c} {v:.3f}' for c, v in aps))
    return lines


def find_name(records: Dict[int, dict]) -> Optional[str]:
    """The prefix of the first hook that logged weights."""
    for rec in records.values():
        for key in rec:
            prefix, _, leaf = key.rpartition('/')
            if prefix and (leaf == 'alpha' or leaf.startswith('weight_')):
                return prefix
    return None


def series(records: Dict[int, dict], key: str):
    its = [i for i in sorted(records) if key in records[i]]
    return its, [records[i][key] for i in its]


def plot(records: Dict[int, dict], name: str, out: str,
         val_records: Optional[List[Tuple[int, dict]]] = None) -> List[str]:
    """Write the figure; return the keys that were drawn (``AP50/<class>``
    for the per-class AP of ``val_records``)."""
    leaves = sorted({k.split('/', 1)[1] for rec in records.values()
                     for k in rec if k.startswith(name + '/')})
    weight_keys = ['alpha'] if 'alpha' in leaves else \
        [k for k in leaves if k.startswith('weight_')]
    window_keys = [k for k in WINDOW_KEYS if k in leaves]
    gramian_keys = [k for k in leaves if k.startswith(('cos_', 'sqnorm_'))]
    if not weight_keys:
        raise ValueError(f'no weights logged under {name!r}; logged keys: '
                         f'{leaves}')
    classes = per_class_ap(val_records or [])
    rows = 1 + bool(window_keys) + bool(gramian_keys) + bool(classes)
    fig, axes = plt.subplots(rows, 1, figsize=(8, 3.2 * rows), sharex=True,
                             squeeze=False)
    ax = axes[0, 0]
    for key in weight_keys:
        ax.step(*series(records, f'{name}/{key}'), where='post',
                label='α' if key == 'alpha' else key)
    ax.set_ylabel('loss weight')
    ax.set_title(f'{name}: loss weights')
    ax.grid(alpha=0.3)
    ax.legend()
    if window_keys:
        ax = axes[1, 0]
        for key in window_keys:
            task, stat = key.split('_')
            ax.step(*series(records, f'{name}/{key}'), where='post',
                    linestyle='-' if stat == 'mean' else '--',
                    color='C0' if task == 'cls' else 'C1',
                    label=f'{stat}(L_{task})')
        ax.set_ylabel('weighted loss, last window')
        ax.grid(alpha=0.3)
        ax.legend()
    if gramian_keys:
        ax = axes[1 + bool(window_keys), 0]
        for key in (k for k in gramian_keys if k.startswith('cos_')):
            ax.plot(*series(records, f'{name}/{key}'), label=key)
        ax.axhline(0, color='grey', linewidth=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel('gradient cosine')
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small', loc='upper left')
        norms = ax.twinx()
        for key in (k for k in gramian_keys if k.startswith('sqnorm_')):
            norms.plot(*series(records, f'{name}/{key}'), linestyle=':',
                       label=key)
        norms.set_yscale('log')
        norms.set_ylabel('squared gradient norm')
        norms.legend(fontsize='small', loc='upper right')
    if classes:
        ax = axes[-1, 0]
        for cls, (its, values) in classes.items():
            ax.plot(its, values, marker='o', label=cls)
        ax.set_ylabel('AP@0.5 (validation)')
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small', ncol=2)
    axes[-1, 0].set_xlabel('iteration')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return weight_keys + window_keys + gramian_keys + [
        f'AP50/{c}' for c in classes]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='work_dir of a training run')
    parser.add_argument('--out', help='PNG to write (default: '
                        '<work_dir>/loss_weights.png)')
    parser.add_argument('--name', help='the hook name (default: the first '
                        'one found in the logs)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    records = load_scalars(args.work_dir)
    name = args.name or find_name(records)
    if name is None:
        sys.exit(f'no loss weights in the logs of {args.work_dir!r} '
                 f'(was a LossWeightingHook in default_hooks?)')
    out = args.out or osp.join(args.work_dir, 'loss_weights.png')
    val_records = load_val_records(args.work_dir)
    plot(records, name, out, val_records)
    for line in per_class_lines(records, name, val_records):
        print(line)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
