"""Check the dataset a config trains on before training on it.

    python tools/misc/check_dataset.py CONFIG [--split train|val|test]
        [--min-size PX] [--out-dir DIR] [--decode] [--strict]
        [--max-list N] [--no-build] [--cfg-options KEY=VALUE ...]

Reads the raw annotations (VOC XML files, COCO json) of the dataset that
``CONFIG`` builds (dataset wrappers included), prints images, boxes, boxes
per class, classes the config does not know, box size/aspect statistics and
every problem with its file, and writes ``report.json`` (all findings) and
``box_stats.png`` (histograms) to ``--out-dir``.

Exit status: 0 when no error was found, 1 when one was (with ``--strict``:
also when a warning was), 2 on bad arguments. Errors are what makes mmdet's
dataset build or first pass over the data fail (missing/unreadable image or
annotation files, malformed annotations, a COCO annotation without
``area``, a sub-dataset left without images, which mmengine cannot
serialise) and zero-size or wholly-outside boxes that reach the train
losses because the train pipeline does not filter them; warnings are what
the loader or the pipeline drops or fixes; notes are kept as they are (see
mmdet_alwa/datasets/check/rules.py and docs/troubleshooting_nan.md). The
dataset is also built with mmdet itself (``--no-build`` skips it) and a
failure the rules did not foresee is an error too.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config, DictAction

from mmdet_alwa.datasets.check import (SPLITS, CheckReport, check_dataset,
                                       format_report)


def log_bins(v: np.ndarray, num: int = 40) -> np.ndarray:
    """Increasing log-spaced histogram bins around positive values, also
    for a single value (one box) or all values equal."""
    lo, hi = max(float(v.min()), 1e-3), max(float(v.max()), 1e-3)
    if hi <= lo * 1.01:
        lo, hi = lo / 1.5, hi * 1.5
    return np.geomspace(lo, hi, num)


def plot_box_histograms(sizes: Sequence[Tuple[float, float]], path: str,
                        title: str = '') -> None:
    """Histograms of box sqrt(area), width, height and aspect (log x)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    wh = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    panels = [('sqrt(area) [px]', np.sqrt(wh[:, 0] * wh[:, 1])),
              ('width [px]', wh[:, 0]), ('height [px]', wh[:, 1]),
              ('aspect ratio w/h', wh[:, 0] / wh[:, 1])]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (label, v) in zip(axes, panels):
        if len(v):
            ax.hist(v, bins=log_bins(v))
        ax.set_xscale('log')
        ax.xaxis.set_minor_formatter(NullFormatter())  # no clutter
        ax.set_xlabel(label)
    axes[0].set_ylabel('boxes')
    fig.suptitle(f'{title} ({len(wh)} boxes)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(report: CheckReport, out_dir: str, title: str) -> dict:
    """Write ``report.json`` and ``box_stats.png``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(json=osp.join(out_dir, 'report.json'),
                 png=osp.join(out_dir, 'box_stats.png'))
    with open(paths['json'], 'w') as f:
        json.dump(report.to_dict(), f, indent=1)
    plot_box_histograms(report.sizes, paths['png'], title)
    return paths


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the annotations and images of a config\'s dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', choices=SPLITS, default='train')
    parser.add_argument('--min-size', type=float, default=1.0,
                        help='note kept boxes with a side below this (px)')
    parser.add_argument('--out-dir', default=None,
                        help='where report.json and box_stats.png go '
                             '(default: work_dirs/check_dataset/'
                             '<config>/<split>)')
    parser.add_argument('--decode', action='store_true',
                        help='decode every image (slower) instead of '
                             'reading its header only')
    parser.add_argument('--strict', action='store_true',
                        help='exit 1 on warnings too')
    parser.add_argument('--max-list', type=int, default=20,
                        help='findings printed per kind (all are in '
                             'report.json)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--no-build', action='store_true',
                        help='do not also build the dataset with mmdet')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    args = parser.parse_args(argv)
    if args.min_size < 0:
        parser.error(f'--min-size must be >= 0, got {args.min_size}')
    if args.max_list < 0:
        parser.error(f'--max-list must be >= 0, got {args.max_list}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'check_dataset', name,
                                       args.split)
    report = check_dataset(cfg, args.split, min_size=args.min_size,
                           decode=args.decode,
                           progress=not args.no_progress,
                           verify_build=not args.no_build)
    paths = write_outputs(report, out_dir, f'{name} [{args.split}]')
    print(f'config: {args.config}')
    print(format_report(report, args.max_list, args.strict))
    print(f'report: {paths["json"]}   histograms: {paths["png"]}')
    return 1 if report.errors(args.strict) else 0


if __name__ == '__main__':
    sys.exit(main())
