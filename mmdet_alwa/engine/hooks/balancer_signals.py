"""Signal providers of the comparison balancers (DTP, GradNorm, TDB).

- ``kpi`` (DTP): per task, a key performance indicator in [0, 1] read from
  the inputs of the task's loss modules:
  classification -- accuracy over the samples with a positive label weight
  (the sampled anchors/proposals; all non-ignored anchors without a sampler);
  regression -- mean IoU between the predicted and target boxes of the
  positive samples (rows with a positive box weight), both decoded with the
  head's ``bbox_coder`` against the same unit anchor (IoU is invariant to the
  anchor's translation and per-axis scale, so this is the IoU of the real
  boxes), or taken as they are when the head has ``reg_decoded_bbox=True``.
  An iteration without a positive sample gives NaN (the rule skips it).
- ``num_samples`` (TDB's :math:`n_j`): the number of those samples.
- ``grad_norm`` (GradNorm, TDB): :math:`\\|\\nabla_W L_i\\|_2` of each task's
  raw loss with respect to a shared layer :math:`W`, computed with
  ``torch.autograd.grad(retain_graph=True)`` after the detector's loss forward
  and before the main backward.

A task's kind (classification or regression) is read from its loss call: a
classification loss gets integer labels as its target, a regression loss a
float tensor of the prediction's shape. ``kinds=dict(task='cls'|'reg')``
overrides it.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import nn

from .signals import SignalProvider, register_signal_provider

__all__ = ['LossInputProvider', 'KPIProvider', 'NumSamplesProvider',
           'GradNormProvider']

_KINDS = ('cls', 'reg')


def _owner(model: nn.Module, module: nn.Module) -> Optional[nn.Module]:
    """The module that holds ``module`` as a direct child (the head)."""
    for parent in model.modules():
        if any(child is module for child in parent.children()):
            return parent
    return None


class LossInputProvider(SignalProvider):
    """Accumulates per-task statistics from the loss modules' inputs.

    Args:
        kinds (dict, optional): ``{task: 'cls' | 'reg'}``; default: inferred
            from each loss call.
    """

    def __init__(self, kinds: Optional[Mapping[str, str]] = None) -> None:
        kinds = dict(kinds or {})
        bad = {t: k for t, k in kinds.items() if k not in _KINDS}
        if bad:
            raise ValueError(f'kinds must map tasks to one of {_KINDS}, '
                             f'got {bad}')
        self.kinds = kinds
        self._handles: List = []
        self.reset()

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        super().attach(model, loss_modules)
        unknown = set(self.kinds) - set(loss_modules)
        if unknown:
            raise ValueError(f'kinds names unknown tasks {sorted(unknown)}; '
                             f'tasks: {sorted(loss_modules)}')
        for task, modules in loss_modules.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(
                    self._make_hook(task, module, _owner(model, module)),
                    with_kwargs=True))

    def _make_hook(self, task: str, module: nn.Module,
                   head: Optional[nn.Module]):

        def hook(mod, args, kwargs):
            if len(args) < 3 or not all(
                    isinstance(a, torch.Tensor) for a in args[:3]):
                return None  # not the (pred, target, weight) convention
            pred, target, weight = (a.detach() for a in args[:3])
            kind = self.kinds.get(task) or (
                'cls' if not target.is_floating_point() else 'reg')
            with torch.no_grad():
                stats = torch.stack([torch.as_tensor(v, dtype=torch.float64)
                                     .to(pred.device) for v in self._measure(
                                         kind, module, head, pred, target,
                                         weight)])
            # tensors: no device sync until collect()
            self.kind_of[task] = kind
            self.stats[task] = self.stats.get(task, 0) + stats
            return None

        return hook

    def _measure(self, kind, module, head, pred, target, weight):
        raise NotImplementedError

    def reset(self) -> None:
        self.stats: Dict[str, torch.Tensor] = {}
        self.kind_of: Dict[str, str] = {}

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@register_signal_provider('kpi')
class KPIProvider(LossInputProvider):
    """DTP's KPIs: classification accuracy, regression mean IoU (see the
    module docstring).

    Args:
        kinds: as :class:`LossInputProvider`.
        cls_metric (str): ``'accuracy'`` (default) or ``'balanced'``, the mean
            of the foreground and background accuracies. Without a sampler
            (RetinaNet) almost every anchor is background, the accuracy is
            ~0.98 from the start and DTP all but switches the classification
            loss off; the balanced accuracy does not saturate that way.
    """

    def __init__(self, kinds: Optional[Mapping[str, str]] = None,
                 cls_metric: str = 'accuracy') -> None:
        if cls_metric not in ('accuracy', 'balanced'):
            raise ValueError(f'cls_metric must be "accuracy" or "balanced", '
                             f'got {cls_metric!r}')
        self.cls_metric = cls_metric
        super().__init__(kinds)

    def _measure(self, kind, module, head, pred, target, weight):
        # masks instead of boolean indexing: no device sync per loss call
        if kind == 'cls':
            keep = weight.reshape(weight.size(0), -1)[:, 0] > 0
            if getattr(module, 'use_sigmoid', False):
                # sigmoid heads: channels are the foreground classes, label
                # C = background; predicted background if no score > 0.5
                best, idx = pred.max(dim=1)
                pred_labels = torch.where(best > 0, idx,
                                          idx.new_tensor(pred.size(1)))
            else:
                pred_labels = pred.argmax(dim=1)
            correct = (pred_labels == target) & keep
            # foreground: labels 0..C-1; background label = C (sigmoid) or
            # the last channel (softmax)
            fg = keep & (target < (pred.size(1) if getattr(
                module, 'use_sigmoid', False) else pred.size(1) - 1))
            return correct.sum(), keep.sum(), (correct & fg).sum(), fg.sum()
        pos = weight.reshape(weight.size(0), -1).gt(0).any(dim=1)
        pred, target = pred.float(), target.float()
        if not getattr(head, 'reg_decoded_bbox', False):
            if head is None or not hasattr(head, 'bbox_coder'):
                raise ValueError(
                    'the kpi provider needs the bbox_coder of the head that '
                    'owns the regression loss')
            unit = pred.new_tensor([0., 0., 1., 1.]).expand(pred.size(0), 4)
            pred = head.bbox_coder.decode(unit, pred)
            target = head.bbox_coder.decode(unit, target)
            pred, target = (getattr(b, 'tensor', b) for b in (pred, target))
        iou = bbox_overlaps(pred, target, is_aligned=True)
        return torch.where(pos, iou, 0).sum(), pos.sum(), 0, 0

    def collect(self) -> Dict[str, float]:
        out = {}
        for task in self.loss_modules:
            if task not in self.stats:
                out[task] = math.nan
                continue
            hits, total, fg_hits, fg = self.stats[task].tolist()
            if self.kind_of[task] == 'cls' and self.cls_metric == 'balanced':
                rates = [h / n for h, n in ((fg_hits, fg),
                                            (hits - fg_hits, total - fg)) if n]
                out[task] = sum(rates) / len(rates) if rates else math.nan
            else:
                out[task] = hits / total if total else math.nan
        return out


@register_signal_provider('num_samples')
class NumSamplesProvider(LossInputProvider):
    """TDB's :math:`n_j`: samples with a positive weight (classification) or
    positive samples (regression) per iteration."""

    def _measure(self, kind, module, head, pred, target, weight):
        rows = weight.reshape(weight.size(0), -1)
        n = rows[:, 0] > 0 if kind == 'cls' else rows.gt(0).any(dim=1)
        return (n.sum(), )

    def collect(self) -> Dict[str, float]:
        return {t: float(self.stats[t][0]) if t in self.stats else 0.0
                for t in self.loss_modules}


@register_signal_provider('grad_norm')
class GradNormProvider(SignalProvider):
    """Norm of each task's raw-loss gradient w.r.t. shared parameters.

    Args:
        shared_layer (str | list[str], optional): name(s) of the module(s) of
            the unwrapped detector whose parameters form :math:`W`. Default:
            the last layer shared by the balanced heads -- the head's
            ``rpn_conv`` (RPN), its last ``shared_fcs`` / ``shared_convs``
            layer (RoI heads), else the neck's output convs ``fpn_convs``
            (RetinaNet-style heads whose branches split at the input).
            ``['backbone', 'neck']`` gives LibMTL's "all shared parameters".
    """

    def __init__(self,
                 shared_layer: Union[str, Sequence[str], None] = None) -> None:
        if isinstance(shared_layer, str):
            shared_layer = [shared_layer]
        if shared_layer is not None and (not shared_layer or not all(
                isinstance(s, str) and s for s in shared_layer)):
            raise ValueError(f'shared_layer must be a module name or a list '
                             f'of them, got {shared_layer!r}')
        self.shared_layer = shared_layer
        self.norms: Dict[str, float] = {}

    def attach(self, model: nn.Module,
               loss_modules: Mapping[str, List[nn.Module]]) -> None:
        super().attach(model, loss_modules)
        names = self.shared_layer or [self._default_layer(model, loss_modules)]
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f'shared_layer {missing} not found in the '
                             f'model')
        self.layer_names = names
        self.params = [p for n in names for p in modules[n].parameters()
                       if p.requires_grad]
        if not self.params:
            raise ValueError(f'shared_layer {names} has no trainable '
                             f'parameters')

    @staticmethod
    def _default_layer(model: nn.Module,
                       loss_modules: Mapping[str, List[nn.Module]]) -> str:
        owners = {id(_owner(model, m)) for ms in loss_modules.values()
                  for m in ms}
        names = {id(m): n for n, m in model.named_modules()}
        if len(owners) == 1 and next(iter(owners)) in names:
            head_name = names[next(iter(owners))]
            head = dict(model.named_modules())[head_name]
            prefix = f'{head_name}.' if head_name else ''
            if isinstance(getattr(head, 'rpn_conv', None), nn.Module):
                return f'{prefix}rpn_conv'
            for attr in ('shared_fcs', 'shared_convs'):
                layers = getattr(head, attr, None)
                if isinstance(layers, nn.ModuleList) and len(layers):
                    return f'{prefix}{attr}.{len(layers) - 1}'
        neck = getattr(model, 'neck', None)
        if isinstance(neck, nn.Module):
            return 'neck.fpn_convs' if isinstance(
                getattr(neck, 'fpn_convs', None), nn.Module) else 'neck'
        raise ValueError('cannot find a layer shared by the balanced losses; '
                         'set shared_layer')

    def reset(self) -> None:
        self.norms = {}

    def on_losses(self, raw: Mapping[str, torch.Tensor], rule) -> None:
        for task, loss in raw.items():
            if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
                self.norms[task] = 0.0
                continue
            grads = torch.autograd.grad(loss, self.params, retain_graph=True,
                                        allow_unused=True)
            sq = [g.detach().float().pow(2).sum() for g in grads
                  if g is not None]
            self.norms[task] = float(torch.stack(sq).sum().sqrt()) \
                if sq else 0.0

    def collect(self) -> Dict[str, float]:
        return {t: self.norms.get(t, math.nan) for t in self.loss_modules}
