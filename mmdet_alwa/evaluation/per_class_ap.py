"""Per-class AP@0.5, recall and number of detections (issue 19).

mmdet's ``CocoMetric(classwise=True)`` logs per-class AP over IoU 0.5:0.95
and ``VOCMetric`` only the mean; neither logs the per-class AP@0.5 and recall
that show a class collapsing while the mean hides it (docs/alwa.md, "Small
objects"). :class:`PerClassAPMetric` computes them with mmdet's own
``mmdet.evaluation.functional.eval_map`` (area under the interpolated
precision-recall curve, VOC2010+ style) and logs, with the default prefix
``per_class``::

    per_class/mAP50                 mean AP@0.5 over the classes with a gt
    per_class/<class>_AP50          AP@0.5 of the class
    per_class/<class>_recall        recall at the last detection (all kept)
    per_class/<class>_num_dets      number of detections of the class
    per_class/<class>_num_gts       number of (non-ignored) gt boxes

``tools/experiments/collect_table.py`` reads ``<prefix>/<class>_AP50`` and
``<prefix>/<class>_recall`` into its per-class rows. A class with no gt in the
whole validation set has AP and recall 0 (eval_map's convention) and is left
out of the mean. Use it beside ``CocoMetric`` (``val_evaluator`` a list)::

    val_evaluator = [dict(type='CocoMetric', ...),
                     dict(type='PerClassAPMetric')]
"""
from collections import OrderedDict
from typing import List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmdet.evaluation.functional import eval_map
from mmdet.registry import METRICS

from mmdet_alwa.weighting.validation import check_int


@METRICS.register_module()
class PerClassAPMetric(BaseMetric):
    """Per-class AP at one IoU threshold, recall and detection counts.

    Args:
        iou_thr (float): the IoU at which a detection matches a gt box, in
            (0, 1); the keys are named ``AP<100 * iou_thr>`` (``AP50``).
        eval_mode (str): ``'area'`` (area under the precision envelope) or
            ``'11points'`` (VOC2007), as ``eval_map``.
        use_legacy_coordinate (bool): widths as ``x2 - x1 + 1`` (PASCAL VOC's
            devkit); False (the default) for COCO-style boxes.
        nproc (int): processes of ``eval_map``'s pool.
        collect_device, prefix: as mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = 'per_class'

    def __init__(self,
                 iou_thr: float = 0.5,
                 eval_mode: str = 'area',
                 use_legacy_coordinate: bool = False,
                 nproc: int = 1,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(iou_thr, bool) or not isinstance(iou_thr, float) or \
                not 0.0 < iou_thr < 1.0:
            raise ValueError(f'PerClassAPMetric: iou_thr must be a float in '
                             f'(0, 1), got {iou_thr!r}')
        if eval_mode not in ('area', '11points'):
            raise ValueError(f"PerClassAPMetric: eval_mode must be 'area' or "
                             f"'11points', got {eval_mode!r}")
        check_int('PerClassAPMetric: nproc', nproc)
        self.iou_thr = iou_thr
        self.eval_mode = eval_mode
        self.use_legacy_coordinate = bool(use_legacy_coordinate)
        self.nproc = nproc
        self.ap_name = f'AP{int(round(iou_thr * 100)):02d}'

    def _classes(self) -> List[str]:
        meta = self.dataset_meta or {}
        if not meta.get('classes'):
            raise ValueError(
                'PerClassAPMetric needs the dataset\'s class names '
                '(dataset_meta["classes"]); the evaluator sets them from the '
                'dataset\'s metainfo')
        return list(meta['classes'])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's gt (and ignored gt) and its detections split by
        class, as mmdet's ``VOCMetric``."""
        num_classes = len(self._classes())
        for sample in data_samples:
            gt = sample['gt_instances']
            ignored = sample.get('ignored_instances', {})
            ann = dict(
                labels=gt['labels'].cpu().numpy(),
                bboxes=gt['bboxes'].cpu().numpy().reshape(-1, 4),
                bboxes_ignore=(ignored['bboxes'].cpu().numpy().reshape(-1, 4)
                               if 'bboxes' in ignored
                               else np.zeros((0, 4), dtype=np.float32)),
                labels_ignore=(ignored['labels'].cpu().numpy()
                               if 'labels' in ignored
                               else np.zeros((0, ), dtype=np.int64)))
            pred = sample['pred_instances']
            boxes = pred['bboxes'].cpu().numpy().reshape(-1, 4)
            scores = pred['scores'].cpu().numpy().reshape(-1, 1)
            labels = pred['labels'].cpu().numpy()
            dets = [np.hstack([boxes[labels == c], scores[labels == c]])
                    for c in range(num_classes)]
            self.results.append((ann, dets))

    def compute_metrics(self, results: list) -> dict:
        classes = self._classes()
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        mean_ap, per_class = eval_map(
            list(preds), list(gts), iou_thr=self.iou_thr,
            dataset=classes, logger=logger, nproc=self.nproc,
            use_legacy_coordinate=self.use_legacy_coordinate,
            eval_mode=self.eval_mode)
        out = OrderedDict()
        out[f'm{self.ap_name}'] = float(mean_ap)
        for name, res in zip(classes, per_class):
            recall = np.asarray(res['recall']).reshape(-1)
            out[f'{name}_{self.ap_name}'] = float(res['ap'])
            # eval_map's recall after each detection, in score order: the
            # last one is the recall with every detection kept
            out[f'{name}_recall'] = float(recall[-1]) if recall.size else 0.0
            out[f'{name}_num_dets'] = int(res['num_dets'])
            out[f'{name}_num_gts'] = int(res['num_gts'])
        return out
