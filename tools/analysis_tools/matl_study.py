"""MATL's experiment (Zhou et al., IGARSS 2025, Table II) at CPU scale.

Trains the small from-scratch Faster R-CNN of
``configs/matl/faster_rcnn_r18_matl_demo.py`` on the built-in demo data
(5 shape classes) once per cell and seed, and evaluates it on the val split:

* cells: ``none`` (plain StandardRoIHead), ``cltl`` (class-label triplet
  loss only, lambda = 0), ``matl_0.25`` / ``matl_0.5`` / ``matl_0.75``
  (lambda), all on the shared FC output (``embedding='shared'``), and
  ``roi_matl_0.5`` on the side branch (``embedding='roi'``);
* metrics: the paper's classification accuracy and IoU, read per
  ground-truth box from the detections (:class:`MatchedDetectionMetric`),
  plus COCO bbox mAP and mAP@0.5.

Resumable: every finished run appends one JSON line to
``WORK_DIR/results.jsonl``; runs already there are skipped. At the end (and
with ``--table-only``) the mean and the standard deviation over the seeds go
to ``WORK_DIR/results.md``::

    OMP_NUM_THREADS=1 nohup nice -n 2 python tools/analysis_tools/matl_study.py \
        --work-dir work_dirs/matl_study --seeds 0 1 2 &
"""
import argparse
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric

CONFIG = 'configs/matl/faster_rcnn_r18_matl_demo.py'
CELLS = {
    'none': None,
    'cltl': dict(box_weight=0.0),
    'matl_0.25': dict(box_weight=0.25),
    'matl_0.5': dict(box_weight=0.5),
    'matl_0.75': dict(box_weight=0.75),
    'roi_matl_0.5': dict(box_weight=0.5, embedding='roi'),
}
METRICS = ('acc', 'iou', 'recall', 'bbox_mAP', 'bbox_mAP_50')


class MatchedDetectionMetric(BaseMetric):
    """The paper's per-object accuracy and IoU, read from detections.

    The paper predicts one class and one box per single-object tile. Here each
    ground-truth box ``g`` of the val split gets the detector's answer for it:
    the highest-scoring detection (any class) whose IoU with ``g`` is at least
    ``iou_thr``. Then, over all ground-truth boxes, ``acc`` is the fraction
    whose answer has ``g``'s class (no answer counts as wrong), ``recall``
    the fraction with an answer, and ``iou`` the mean IoU of the answers.
    """
    default_prefix = 'matched'

    def __init__(self, iou_thr: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.iou_thr = iou_thr

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        from mmdet.structures.bbox import bbox_overlaps
        for s in data_samples:
            pred, gt = s['pred_instances'], s['gt_instances']
            gt_boxes = gt['bboxes'].cpu().float()
            if len(gt_boxes) == 0:
                continue
            # a dummy detection (IoU 0, score -1) so that argmax has a column
            ious = torch.cat([bbox_overlaps(
                gt_boxes, pred['bboxes'].cpu().float()),
                gt_boxes.new_zeros(len(gt_boxes), 1)], dim=1)
            scores = torch.cat([pred['scores'].cpu().float(),
                                gt_boxes.new_full((1, ), -1.0)])
            labels = torch.cat([pred['labels'].cpu(),
                                torch.full((1, ), -1, dtype=torch.long)])
            ok = ious >= self.iou_thr  # (G, D + 1)
            best = torch.where(ok, scores[None, :], -2.0).argmax(dim=1)
            found = ok.any(dim=1)
            self.results.append(dict(
                found=found.numpy(),
                correct=(found & (labels[best] == gt['labels'].cpu())).numpy(),
                iou=ious.gather(1, best[:, None])[:, 0][found].numpy()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        found = np.concatenate([r['found'] for r in results])
        iou = np.concatenate([r['iou'] for r in results])
        return dict(
            acc=float(np.concatenate([r['correct'] for r in results]).mean()),
            recall=float(found.mean()),
            iou=float(iou.mean()) if len(iou) else 0.0)


def study_cfg(cell: str, seed: int, work_dir: str, data_root: str,
              box_clusters: str, epochs: int, num_train: int) -> Config:
    """The config of one run: the demo MATL config, cell and schedule."""
    cfg = Config.fromfile(CONFIG)
    roi = cfg.model.roi_head
    roi.box_clusters = box_clusters
    spec = CELLS[cell]
    if spec is None:
        for key in ('box_clusters', 'num_box_labels', 'embedding',
                    'embed_channels', 'loss_triplet'):
            roi.pop(key)
        roi.type = 'StandardRoIHead'
    else:
        spec = dict(spec)
        roi.embedding = spec.pop('embedding', 'shared')
        roi.loss_triplet.update(spec)
        if roi.loss_triplet.box_weight == 0:
            roi.box_clusters = None
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader']
        ds.dataset.data_root = data_root
        ds.num_workers, ds.persistent_workers = 0, False
    cfg.val_evaluator = [
        dict(cfg.val_evaluator, ann_file=osp.join(data_root,
                                                  'annotations/val.json')),
        dict(type='MatchedDetectionMetric')]
    iters_per_epoch = -(-num_train // cfg.train_dataloader.batch_size)
    warmup = max(1, min(100, iters_per_epoch * epochs // 5))
    lr = cfg.optim_wrapper.optimizer.lr
    # evaluated once, by run_one, after training
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs,
                         val_interval=epochs + 1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs,
             T_max=epochs, eta_min=lr * 0.01, convert_to_iter_based=True)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 20
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = osp.join(work_dir, f'{cell}_seed{seed}')
    cfg.experiment_name = f'{cell}_seed{seed}'
    return cfg


def run_one(cfg: Config) -> Dict[str, float]:
    from mmengine.runner import Runner
    from mmdet_alwa.utils import safe_checkpoint_loading
    runner = Runner.from_cfg(cfg)
    with safe_checkpoint_loading():
        runner.train()
        metrics = runner.val()
    return {k.split('/')[-1]: float(v) for k, v in metrics.items()
            if k.split('/')[-1] in METRICS}


def load_results(path: str) -> List[dict]:
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _mean_sd(x: Sequence[float]) -> str:
    x = np.asarray(x, dtype=float)
    sd = x.std(ddof=1) if len(x) > 1 else float('nan')
    return f'{x.mean():.3f} ± {sd:.3f}'


def table(results: List[dict], cells: Sequence[str],
          baseline: str = 'none') -> str:
    """Markdown: mean ± sample std over the seeds of each cell, then the
    paired differences to ``baseline`` (same seed) of acc, IoU and mAP."""
    deltas = ('acc', 'iou', 'bbox_mAP')
    lines = ['| cell | seeds | ' + ' | '.join(METRICS) + ' | ' +
             ' | '.join(f'Δ{m} vs {baseline}' for m in deltas) + ' |',
             '|---' * (len(METRICS) + len(deltas) + 2) + '|']
    base = {r['seed']: r for r in results if r['cell'] == baseline}
    for cell in cells:
        rows = [r for r in results if r['cell'] == cell]
        if not rows:
            continue
        vals = [_mean_sd([r[m] for r in rows]) for m in METRICS]
        paired = [r for r in rows if r['seed'] in base]
        for m in deltas:
            vals.append('' if cell == baseline or not paired else _mean_sd(
                [r[m] - base[r['seed']][m] for r in paired]))
        seeds = ','.join(str(r['seed']) for r in rows)
        lines.append(f'| {cell} | {seeds} | ' + ' | '.join(vals) + ' |')
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/matl_study')
    p.add_argument('--cells', nargs='+', default=list(CELLS),
                   choices=list(CELLS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--num-train', type=int, default=320,
                   help='demo train images (default 320, as the demo)')
    p.add_argument('--table-only', action='store_true',
                   help='only write the table of the finished runs')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    from mmdet.registry import METRICS as MMDET_METRICS
    from mmdet.utils import register_all_modules

    import mmdet_alwa  # noqa: F401
    from mmdet_alwa.datasets.demo_data import ensure_demo_dataset
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    MMDET_METRICS.register_module(module=MatchedDetectionMetric, force=True)
    os.makedirs(args.work_dir, exist_ok=True)
    results_path = osp.join(args.work_dir, 'results.jsonl')
    if not args.table_only:
        data_root = osp.abspath(osp.join(args.work_dir, 'data')) + '/'
        demo = dict(Config.fromfile(CONFIG).demo_data,
                    num_train=args.num_train)
        ensure_demo_dataset(data_root, **demo)
        box_clusters = osp.join(data_root, 'box_labels.json')
        if not osp.exists(box_clusters):
            from cluster_boxes import main as cluster_main
            cluster_main([CONFIG, '--out', box_clusters, '--cfg-options',
                          f'train_dataloader.dataset.data_root={data_root}'])
        for seed in args.seeds:  # seed-major: every cell gets seed 0 first
            for cell in args.cells:
                done = {(r['cell'], r['seed'])
                        for r in load_results(results_path)}
                if (cell, seed) in done:
                    continue
                cfg = study_cfg(cell, seed, args.work_dir, data_root,
                                box_clusters, args.epochs, args.num_train)
                start = time.process_time()
                metrics = run_one(cfg)
                row = dict(cell=cell, seed=seed, epochs=args.epochs,
                           num_train=args.num_train,
                           minutes=(time.process_time() - start) / 60,
                           **metrics)
                with open(results_path, 'a') as f:
                    f.write(json.dumps(row) + '\n')
                print(json.dumps(row), flush=True)
    md = table(load_results(results_path), args.cells)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md + '\n')
    print(md)
    return load_results(results_path)


if __name__ == '__main__':
    import sys
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    main()
