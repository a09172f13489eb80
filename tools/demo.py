"""Train, evaluate and visualise the demo detector on the built-in demo data.

What ``make demo`` runs::

    python tools/demo.py [--config CONFIG] [--work-dir work_dirs/demo]

The demo data is generated on first use into the config's ``data_root``
(``data/demo/``). While it trains, a progress display shows the epoch, the
iteration, the loss, ALWA's α and the ETA (``--verbose``: mmengine's log
lines instead); the full log goes to the work dir, and its path is printed
first. At the end the script prints bbox mAP and mAP@0.5 on the val split,
where the log, the checkpoint and the visualised predictions are, and the
ALWA weight trajectory when the config balances losses with ALWA; when the
validation logs per-class AP@0.5 (``PerClassAPMetric``, as the small-object
demo configs), each class's AP@0.5, recall and detections beside the final α.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import os.path as osp
import sys
import time
import warnings
from typing import Dict, List, Tuple

# Idle OpenMP threads sleep instead of spinning: on a busy CPU, spinning
# threads waiting for a descheduled peer made training several times slower.
# Read when torch loads its OpenMP runtime, so set before importing torch.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
# setuptools' notice about mmengine's use of pkg_resources is not for users
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mmcv  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from rich.console import Console  # noqa: E402
from mmdet.structures.bbox import get_box_tensor  # noqa: E402

import mmdet_alwa  # noqa: F401,E402  (registers our modules)
from mmdet_alwa.datasets.demo_data import ensure_demo_dataset  # noqa: E402
from mmdet_alwa.engine.hooks import RichProgressHook  # noqa: E402
from mmdet_alwa.utils import safe_checkpoint_loading  # noqa: E402

DEFAULT_CONFIG = 'configs/demo/faster_rcnn_r18_alwa1_demo.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='demo config (default: %(default)s)')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='where logs and checkpoints go '
                        '(default: %(default)s)')
    parser.add_argument('--num-vis', type=int, default=4,
                        help='number of val images to visualise')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='score threshold of the drawn predictions')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load checkpoints named by --cfg-options '
                        '(load_from, resume) as full pickles, which can run '
                        'any code: only for files you trust (same as '
                        'MMDET_ALWA_UNSAFE_LOAD=1; logged as a warning)')
    parser.add_argument('--verbose', action='store_true',
                        help="mmengine's log lines instead of the progress "
                        'display')
    args = parser.parse_args(argv)
    if args.num_vis < 0:
        parser.error('--num-vis must be >= 0')
    return args


# mmengine's notices about mmdet's own use of its file client: not the user's
NOT_FOR_USERS = ('"FileClient" will be deprecated',
                 '"HardDiskBackend" is the alias')


class LogStream(io.TextIOBase):
    """A text stream that writes each line to a logger at INFO."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._pending = ''

    def write(self, text: str) -> int:
        lines = (self._pending + text).split('\n')
        self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self.logger.info(line)
        return len(text)


def build_quiet_runner(cfg) -> Runner:
    """The Runner with a progress display instead of mmengine's console log.

    mmengine prints its environment and the whole config while the Runner is
    built, through a console handler bound to the stdout of that moment; that
    goes nowhere here. The handler then shows warnings and errors only; the
    log file keeps everything.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        runner = Runner.from_cfg(cfg)
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(sys.stdout)
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: not any(
                s in record.getMessage() for s in NOT_FOR_USERS))
    # stdout goes to the log while training (see main), the display does not
    runner.register_hook(RichProgressHook(console=Console(file=sys.stdout),
                                          redirect_stdout=False))
    return runner


def visualise(runner: Runner, num: int, score_thr: float,
              zoom: int = 3) -> List[str]:
    """Draw ground truth (left) and predictions (right) of ``num`` val images,
    enlarged ``zoom`` times so that the labels stay readable."""
    dataset = runner.val_dataloader.dataset
    visualizer = runner.visualizer
    visualizer.dataset_meta = dataset.metainfo
    out_dir = osp.join(runner.log_dir, 'vis')
    model = runner.model
    model.eval()
    paths = []
    with torch.no_grad():
        for idx in range(min(num, len(dataset))):
            sample = model.test_step(pseudo_collate([dataset[idx]]))[0]
            img = mmcv.imread(sample.img_path, channel_order='rgb')
            img = mmcv.imrescale(img, zoom, interpolation='nearest')
            for inst in (sample.gt_instances, sample.pred_instances):
                inst.bboxes = get_box_tensor(inst.bboxes) * zoom
            name = osp.basename(sample.img_path)
            out_file = osp.join(out_dir, name)
            visualizer.add_datasample(
                name, img, data_sample=sample, draw_gt=True,
                pred_score_thr=score_thr, out_file=out_file)
            paths.append(out_file)
    return paths


def read_scalars(log_dir: str) -> List[dict]:
    """The training records that mmengine's LocalVisBackend wrote."""
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def alpha_trajectory(
        records: List[dict]) -> Dict[str, List[Tuple[int, float]]]:
    """Per logged ALWA scalar with 'alpha' in its name: ``[(iter, value)]``
    at the iterations where the value changed (and the first one)."""
    out: Dict[str, List[Tuple[int, float]]] = {}
    for rec in records:
        for key, value in rec.items():
            if 'alpha' not in key or 'step' not in rec:
                continue
            traj = out.setdefault(key, [])
            if not traj or abs(traj[-1][1] - value) > 1e-12:
                traj.append((rec['step'], value))
    return out


def per_class_summary(records: List[dict]) -> List[Tuple[str, dict]]:
    """``[(class, {'AP50': .., 'recall': .., 'num_dets': ..})]`` of the last
    validation record with per-class AP@0.5 (``<prefix>/<class>_AP50``)."""
    for rec in reversed(records):
        classes = [k.split('/', 1)[1][:-len('_AP50')] for k in rec
                   if '/' in k and k.endswith('_AP50')]
        if not classes:
            continue
        prefix = next(k for k in rec if k.endswith('_AP50')).split('/')[0]
        return [(c, {stat: rec[f'{prefix}/{c}_{stat}']
                     for stat in ('AP50', 'recall', 'num_dets')
                     if f'{prefix}/{c}_{stat}' in rec}) for c in classes]
    return []


def per_class_text(per_class: List[Tuple[str, dict]],
                   alphas: Dict[str, List[Tuple[int, float]]]) -> List[str]:
    """The summary's lines: each class's AP@0.5, recall and detections,
    headed by the final value of each logged α."""
    if not per_class:
        return []
    final = ', '.join(f'{k} {traj[-1][1]:.3f}' for k, traj in alphas.items())
    lines = ['per class at the last validation' +
             (f' (final {final}):' if final else ':')]
    for cls, stats in per_class:
        lines.append(f'  {cls:12s} ' + '  '.join(
            f'{name} {int(stats[key])}' if key == 'num_dets' else
            f'{name} {stats[key]:.3f}' for key, name in
            (('AP50', 'AP@0.5'), ('recall', 'recall'),
             ('num_dets', 'detections')) if key in stats))
    return lines


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir

    data_root = cfg.get('data_root', 'data/demo/')
    print(f'demo data: {data_root} (generated on first use)', flush=True)
    ensure_demo_dataset(data_root, **cfg.get('demo_data', {}))

    runner = Runner.from_cfg(cfg) if args.verbose else build_quiet_runner(cfg)
    log_file = osp.join(runner.log_dir, runner.timestamp + '.log')
    print(f'training {args.config} (full log: {log_file})', flush=True)
    # what dataset and evaluation code print (pycocotools) goes to the log
    quiet = (contextlib.nullcontext() if args.verbose else
             contextlib.redirect_stdout(LogStream(runner.logger)))
    try:
        with quiet, safe_checkpoint_loading(unsafe=args.unsafe_load):
            runner.train()  # evaluates on val at the end (val_interval)
    finally:
        for hook in runner.hooks:
            if isinstance(hook, RichProgressHook):
                hook.close()
    hub = runner.message_hub
    metrics = {k: hub.get_scalar(f'val/coco/{k}').current()
               for k in ('bbox_mAP', 'bbox_mAP_50')
               if f'val/coco/{k}' in hub.log_scalars}
    vis_paths = visualise(runner, args.num_vis, args.score_thr)

    last = osp.join(cfg.work_dir, 'last_checkpoint')
    checkpoint = open(last).read().strip() if osp.isfile(last) else None
    records = read_scalars(runner.log_dir)
    alphas = alpha_trajectory(records)
    per_class = per_class_summary(records)

    print('\n==== mmdet_alwa demo ====')
    print(f'config:      {args.config}')
    for key, value in metrics.items():
        print(f'{key + ":":12s} {value:.3f}  (val split)')
    log_dir = runner.log_dir
    print(f'log:         {log_file}')
    print(f'scalars:     {osp.join(log_dir, "vis_data", "scalars.json")}')
    print(f'checkpoint:  {checkpoint}')
    print(f'predictions: {osp.dirname(vis_paths[0]) if vis_paths else None} '
          f'({len(vis_paths)} images, ground truth left, prediction right)')
    for key, traj in alphas.items():
        steps = ', '.join(f'{it}: {v:.3f}' for it, v in traj)
        print(f'{key} (iteration: value where it changed): {steps}')
    for line in per_class_text(per_class, alphas):
        print(line)
    if alphas:
        print(f'plot:        python tools/analysis_tools/plot_loss_weights.py '
              f'{cfg.work_dir}')
    print(f'total time:  {time.time() - start:.0f} s')
    return dict(metrics=metrics, checkpoint=checkpoint, vis=vis_paths,
                log_dir=runner.log_dir, alphas=alphas,
                per_class=dict(per_class))


if __name__ == '__main__':
    main()
