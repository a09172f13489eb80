"""Check the dataset a config trains on before training on it.

    python tools/misc/check_dataset.py CONFIG [--split train|val|test]
        [--min-size PX] [--out-dir DIR] [--decode] [--strict]
        [--max-list N] [--cfg-options KEY=VALUE ...]

Reads the raw annotations (VOC XML files, COCO json) of the dataset that
``CONFIG`` builds (dataset wrappers included), prints images, boxes, boxes
per class, classes the config does not know, box size/aspect statistics and
every problem with its file, and writes ``report.json`` (all findings) and
``box_stats.png`` (histograms) to ``--out-dir``.

Exit status: 0 when no error was found, 1 when one was (with ``--strict``:
also when a warning was), 2 on bad arguments. Errors are the findings that
break or poison training: missing/unreadable image or annotation files,
malformed annotations, an empty split, and zero-size or wholly-outside boxes
that reach the train losses because the train pipeline does not filter them
(see mmdet_alwa/datasets/dataset_check.py and docs/troubleshooting_nan.md).
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction

from mmdet_alwa.datasets.dataset_check import (SPLITS, check_dataset,
                                               format_report, write_outputs)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the annotations and images of a config\'s dataset')
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', choices=SPLITS, default='train')
    parser.add_argument('--min-size', type=float, default=1.0,
                        help='report boxes with a side below this (px)')
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
                           progress=not args.no_progress)
    paths = write_outputs(report, out_dir, f'{name} [{args.split}]')
    print(f'config: {args.config}')
    print(format_report(report, args.max_list, args.strict))
    print(f'report: {paths["json"]}   histograms: {paths["png"]}')
    return 1 if report.errors(args.strict) else 0


if __name__ == '__main__':
    sys.exit(main())
