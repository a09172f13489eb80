"""DTP's ``kpi`` signal: one key performance indicator in [0, 1] per task.

Per kind of loss call (:mod:`.loss_calls`), the mean over the iteration's
samples of a measure of :mod:`.measures`:

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
(~10^5) and weigh a few hundred (sampled anchors, positives). With
``compact=True`` a call keeps only the weighted rows of a cls/box call
(``nonzero`` + ``index_select``), and ``collect()`` measures each module's
rows of the iteration at once (one decode, one IoU); a cls call whose rows
mostly count (no sampler: RetinaNet) is measured in place. That is the
fastest on a CPU, but ``nonzero`` and the "mostly" test read the device: on
a GPU each is a host sync. With ``compact=False`` every call keeps all its
rows and their mask, and ``collect()`` measures each module's rows at once,
masked by the weights (``torch.where``): nothing is read, and a dense head's
five levels cost the kernels of one measurement. The KPIs are the same: the
counts are exact, and the IoUs are summed in float64, where adding them in
other groupings gives the same sum (exactly, unless an IoU is below ~1e-6). ``compact='auto'`` (the
default) compacts on a CPU only.
"""
import math
from typing import Dict, Mapping, Optional, Union

import torch

from .base import register_signal_provider
from .loss_calls import is_decoded
from .loss_inputs import LossInputProvider, as_stats
from .measures import (box_iou, cls_accuracy, decode_deltas,
                       distribution_boxes, mask_iou, quality_score,
                       sample_mask)

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
        compact (bool | str): keep only the weighted rows of cls/box calls
            (True: fastest on a CPU, but two host reads per call), or
            measure every call in place, masked (False: no host read; for
            GPUs); ``'auto'`` (default): True on a CPU, False on other
            devices. Both give the same KPIs (module docstring).
    """

    def __init__(self, kinds: Optional[Mapping[str, str]] = None,
                 cls_metric: str = 'accuracy', warn_after: int = 50,
                 compact: Union[bool, str] = 'auto') -> None:
        if cls_metric not in ('accuracy', 'balanced'):
            raise ValueError(f'cls_metric must be "accuracy" or "balanced", '
                             f'got {cls_metric!r}')
        if not (isinstance(compact, bool) or compact == 'auto'):
            raise ValueError(f'compact must be True, False or "auto", got '
                             f'{compact!r}')
        self.cls_metric = cls_metric
        self.compact = compact
        super().__init__(kinds, warn_after)

    def compacts(self, device: torch.device) -> bool:
        """Whether calls on ``device`` keep only their weighted rows."""
        if self.compact == 'auto':
            return device.type == 'cpu'
        return self.compact

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
            task = self._task_of[name]
            if not self.compacts(pred.device):
                # every row with its mask, measured per module at once in
                # collect(): no host read, and the kernels of one
                # measurement per module instead of one per call (level)
                self._rows.setdefault(name, (task, kind, module, head, []))[
                    -1].append((pred.detach(), target, mask))
                return None
            if kind == 'cls' and 4 * int(mask.count_nonzero()) > pred.size(0):
                # in place, masked
                return self._measure_rows(name, kind, module, head, pred,
                                          target, mask)
            keep = mask.nonzero()[:, 0]
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
        valid = scores.valid if mask is None else scores.valid & mask
        # unweighted rows may hold anything (inf/NaN deltas): masked out.
        # Summed in float64: exact for float32 IoUs down to ~1e-6, so the
        # compact and the masked path, which add the same IoUs in other
        # groupings, agree
        value = scores.value if mask is None else torch.where(
            valid, scores.value, 0)
        return [value.sum(dtype=torch.float64), valid.count_nonzero(), 0, 0]

    def _flush(self) -> None:
        """Measure the rows the calls kept and add them to the stats."""
        with torch.no_grad():
            for name, (task, kind, module, head, calls) in self._rows.items():
                # (pred, target) rows kept, or (pred, target, mask): all rows
                parts = [torch.cat(p) if len(p) > 1 else p[0]
                         for p in zip(*calls)]
                sums = as_stats(self._measure_rows(
                    name, kind, module, head, *parts), parts[0].device)
                self.stats[task] = self.stats.get(task, 0) + sums
        self._rows = {}

    def collect(self) -> Dict[str, Union[float, torch.Tensor]]:
        """Each task's KPI as a 0-d float64 tensor on the device (NaN: no
        sample), computed there without a host read."""
        self._flush()
        out: Dict[str, Union[float, torch.Tensor]] = {}
        for task in self.loss_modules:
            if task not in self.stats:
                out[task] = float('nan')
                continue
            hits, total, fg_hits, fg = self.stats[task].unbind()
            if self.kind_of[task] == 'cls' and self.cls_metric == 'balanced':
                # the mean of the foreground and background accuracies that
                # have a sample (a rate + 0.0 and / 1 are exact)
                bg = total - fg
                rates = (torch.where(fg > 0, fg_hits / fg, 0.0)
                         + torch.where(bg > 0, (hits - fg_hits) / bg, 0.0))
                num = (fg > 0).double() + (bg > 0).double()
                out[task] = torch.where(num > 0, rates / num, math.nan)
            else:
                out[task] = torch.where(total > 0, hits / total, math.nan)
        return out

    def empty_reason(self) -> str:
        return ('its loss modules were not called or had no sample with a '
                'positive weight')

