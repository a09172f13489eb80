"""DTP's ``kpi`` signal: one key performance indicator in [0, 1] per task.

Per kind of loss call (:mod:`.loss_calls`), the mean over the iteration's
samples of a measure of :mod:`mmdet_alwa.models.utils.measures`:

========  ============================================  ======================
kind      KPI                                           samples
========  ============================================  ======================
cls       accuracy (:func:`cls_accuracy`; sigmoid,      positive label weight
          softmax, QFL ``(labels, scores)`` targets)    (all if no weight)
box       IoU of predicted and target box               positive box weight
          (:func:`box_iou`; deltas decoded by the
          head's ``bbox_coder``, IoU-type losses and
          ``reg_decoded_bbox`` heads get boxes)
dfl       IoU of the boxes of GFL's side distributions  positive weight
          (:func:`distribution_boxes`)
mask      mask IoU (:func:`mask_iou`)                   every instance
quality   1 - |sigmoid(pred) - target| (centerness)     positive weight
========  ============================================  ======================

An iteration without a sample gives NaN (DTP skips it); a task whose KPI
stays NaN for ``warn_after`` iterations warns once.

Cost: dense heads call their losses once per FPN level with every anchor
(~10^5) and weigh a few hundred (sampled anchors, positives). A call keeps
only the weighted rows of a cls/box call, and ``collect()`` measures each
module's rows of the iteration at once (one decode, one IoU); a cls call
whose rows mostly count (no sampler: RetinaNet) is measured in place.
"""
from typing import Dict, Mapping, Optional

import torch

from mmdet_alwa.models.utils.measures import (box_iou, cls_accuracy,
                                              decode_deltas,
                                              distribution_boxes, mask_iou,
                                              quality_score, sample_mask)
from .base import register_signal_provider
from .loss_calls import is_decoded
from .loss_inputs import LossInputProvider, as_stats

__all__ = ['KPIProvider']

#: mmdet's regression losses on deltas or boxes (kind known before a call)
_BOX_LOSSES = ('L1Loss', 'SmoothL1Loss', 'BalancedL1Loss', 'MSELoss')


@register_signal_provider('kpi')
class KPIProvider(LossInputProvider):
    """DTP's KPIs (see the module docstring).

    Args:
        kinds, warn_after: as :class:`~.loss_inputs.LossInputProvider`.
        cls_metric (str): ``'accuracy'`` (default) or ``'balanced'``, the mean
            of the foreground and background accuracies. Without a sampler
            (RetinaNet) almost every anchor is background, the accuracy is
            ~0.98 from the start and DTP all but switches the classification
            loss off; the balanced accuracy does not saturate that way.
    """

    def __init__(self, kinds: Optional[Mapping[str, str]] = None,
                 cls_metric: str = 'accuracy', warn_after: int = 50) -> None:
        if cls_metric not in ('accuracy', 'balanced'):
            raise ValueError(f'cls_metric must be "accuracy" or "balanced", '
                             f'got {cls_metric!r}')
        self.cls_metric = cls_metric
        super().__init__(kinds, warn_after)

    def attach(self, model, loss_modules) -> None:
        super().attach(model, loss_modules)
        self._task_of = {name: task
                         for task, names in self.module_names.items()
                         for name in names}

    def check_module(self, task, name, module, head) -> None:
        kind = self.kinds.get(task)
        if kind == 'box' or (kind is None and (
                type(module).__name__ in _BOX_LOSSES
                and not getattr(module, 'use_mask', False))):
            if not is_decoded(module, head) and not hasattr(
                    head, 'bbox_coder'):
                raise ValueError(
                    f'signal \'kpi\': loss module {name!r} '
                    f'({type(module).__name__}) of task {task!r} takes box '
                    f'deltas, and its owner {type(head).__name__} has no '
                    f'bbox_coder to decode them into boxes for the IoU KPI '
                    f'(nor reg_decoded_bbox=True)')

    def reset(self) -> None:
        super().reset()
        # {module name: (task, kind, module, head, [row tensors per call])}
        self._rows: Dict[str, tuple] = {}

    def measure(self, kind, name, module, head, call) -> Optional[list]:
        pred, target, weight = call.pred, call.target, call.weight
        if kind in ('cls', 'box'):
            # a dense head calls these once per level with every anchor; a
            # sampler or the positives keep a few hundred: keep those rows,
            # measure them all at once in collect(). Without a sampler
            # (RetinaNet's classification) most rows count: measure here,
            # without copying them
            if kind == 'cls':
                target = (target[0] if isinstance(target, (tuple, list))
                          else target).reshape(-1)
            mask = sample_mask(weight, pred.size(0), pred.device)
            if kind == 'cls' and 4 * int(mask.count_nonzero()) > pred.size(0):
                return self._measure_rows(name, kind, module, head, pred,
                                          target, mask)
            keep = mask.nonzero()[:, 0]
            task = self._task_of[name]
            rows = self._rows.setdefault(name, (task, kind, module, head, []))
            # index_select: ~50x faster than boolean indexing
            rows[-1].append((pred.index_select(0, keep),
                             target.index_select(0, keep)))
            return None
        if kind == 'dfl':
            boxes = distribution_boxes(pred.float(), target)
            scores = box_iou(*boxes, None if weight is None
                             else weight.reshape(-1, 4))
        elif kind == 'mask':
            scores = mask_iou(pred.float(), target, call.labels)
        else:
            scores = quality_score(pred, target, weight)
        return [(scores.value * scores.valid).sum(), scores.valid.sum(), 0,
                0]

    def _measure_rows(self, name, kind, module, head, pred, target,
                      mask=None) -> list:
        """The sums of a module's weighted rows (``mask``: of these)."""
        if kind == 'cls':
            sigmoid = bool(getattr(module, 'use_sigmoid', False))
            scores = cls_accuracy(pred, target, use_sigmoid=sigmoid)
            valid = scores.valid if mask is None else scores.valid & mask
            hits = scores.value.bool() & valid
            fg = valid & (target < pred.size(1) - (not sigmoid))
            # count_nonzero: sum() would first copy the bools to int64
            return [hits.count_nonzero(), valid.count_nonzero(),
                    (hits & fg).count_nonzero(), fg.count_nonzero()]
        if not is_decoded(module, head):
            coder = getattr(head, 'bbox_coder', None)
            if coder is None:
                raise ValueError(
                    f'signal \'kpi\': loss module {name!r} '
                    f'({type(module).__name__}) takes box deltas, and its '
                    f'owner {type(head).__name__} has no bbox_coder to '
                    f'decode them (nor reg_decoded_bbox=True)')
            pred, target = decode_deltas(coder, pred.float(), target.float())
        scores = box_iou(pred, target)
        return [scores.value.sum(), scores.valid.count_nonzero(), 0, 0]

    def _flush(self) -> None:
        """Measure the rows the calls kept and add them to the stats."""
        with torch.no_grad():
            for name, (task, kind, module, head, calls) in self._rows.items():
                pred, target = (torch.cat(parts) for parts in zip(*calls))
                sums = as_stats(self._measure_rows(
                    name, kind, module, head, pred, target), pred.device)
                self.stats[task] = self.stats.get(task, 0) + sums
        self._rows = {}

    def collect(self) -> Dict[str, float]:
        self._flush()
        out = {}
        for task in self.loss_modules:
            if task not in self.stats:
                out[task] = float('nan')
                continue
            hits, total, fg_hits, fg = self.stats[task].tolist()
            if self.kind_of[task] == 'cls' and self.cls_metric == 'balanced':
                rates = [h / n for h, n in ((fg_hits, fg),
                                            (hits - fg_hits, total - fg)) if n]
                out[task] = sum(rates) / len(rates) if rates \
                    else float('nan')
            else:
                out[task] = hits / total if total else float('nan')
        return self.watch(out)

    def empty_reason(self) -> str:
        return ('its loss modules were not called or had no sample with a '
                'positive weight')

