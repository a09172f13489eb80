"""Reading an mmdet loss call: which tensors are the prediction, the target
and the weight, and which kind of task the call belongs to.

mmdet's losses share the signature ``forward(pred, target, weight=None,
avg_factor=None, reduction_override=None)`` (first two names vary:
``cls_score``/``label``), but heads call them in several ways, all handled
here by binding the call to the module's signature:

- ``loss(pred, target, weight, avg_factor=n)``: anchor heads, RoI heads;
- ``loss(pred, target, weight=w, avg_factor=n)``: ATSS, FCOS, GFL, RTMDet
  box losses;
- ``loss(pred, target, avg_factor=n)``: FCOS classification, centerness;
- ``loss(pred, (labels, scores), ...)``: QFL-style soft targets (GFL,
  RTMDet);
- ``loss_mask(pred, target, labels)``: Mask R-CNN's mask loss, whose third
  argument is the instances' classes, not a weight.
"""
import functools
import inspect
from typing import Any, NamedTuple, Optional

from torch import Tensor, nn

__all__ = ['LossCall', 'parse_loss_call', 'takes_pred_and_target',
           'infer_kind', 'is_decoded', 'owner', 'describe_call', 'KINDS']

#: task kinds: classification, box regression (deltas or decoded boxes),
#: DFL side distributions, instance masks, a quality branch (centerness)
KINDS = ('cls', 'box', 'dfl', 'mask', 'quality')


class LossCall(NamedTuple):
    """``pred`` (Tensor), ``target`` (Tensor or tuple of tensors),
    ``weight`` (Tensor or None), ``labels`` (Tensor or None: the classes
    passed to a mask loss)."""
    pred: Tensor
    target: Any
    weight: Optional[Tensor]
    labels: Optional[Tensor]


def describe_call(args, kwargs) -> str:
    """A short rendering of a call's arguments (shapes and types)."""

    def show(v):
        if isinstance(v, Tensor):
            return f'Tensor{tuple(v.shape)}:{str(v.dtype)[6:]}'
        if isinstance(v, (tuple, list)):
            return '(' + ', '.join(show(x) for x in v) + ')'
        return type(v).__name__

    parts = [show(a) for a in args]
    parts += [f'{k}={show(v)}' for k, v in kwargs.items()]
    return '(' + ', '.join(parts) + ')'


def _is_tensor_or_tensors(value) -> bool:
    if isinstance(value, (tuple, list)):
        return bool(value) and all(isinstance(v, Tensor) for v in value)
    return isinstance(value, Tensor)


@functools.lru_cache(maxsize=None)
def _forward_signature(cls: type) -> inspect.Signature:
    """The signature of ``cls.forward`` (read once per loss class: a loss
    module is called once per FPN level and iteration)."""
    return inspect.signature(cls.forward)


def parse_loss_call(module: nn.Module, args: tuple,
                    kwargs: dict) -> Optional[LossCall]:
    """The prediction, target and weight of one call of ``module``.

    Returns None when the call does not follow mmdet's convention (fewer than
    two tensor arguments, a non-tensor prediction).
    """
    try:
        bound = _forward_signature(type(module)).bind(module, *args,
                                                      **kwargs)
    except TypeError:
        return None
    values = list(bound.arguments.values())[1:]  # without ``self``
    if len(values) < 2:
        return None
    pred, target = values[:2]
    if not isinstance(pred, Tensor) or not _is_tensor_or_tensors(target):
        return None
    third = bound.arguments.get('weight')
    if 'weight' not in bound.arguments and len(args) > 2:
        third = args[2]  # a signature without a ``weight`` name
    if third is not None and not isinstance(third, Tensor):
        return None
    if getattr(module, 'use_mask', False):  # (pred, target, labels)
        return LossCall(pred, target, None, third)
    return LossCall(pred, target, third, None)


def takes_pred_and_target(module: nn.Module) -> bool:
    """Whether ``module.forward`` accepts mmdet's ``(pred, target)``."""
    try:
        inspect.signature(module.forward).bind(None, None)
    except (TypeError, ValueError):
        return False
    return True


def infer_kind(module: nn.Module, call: LossCall) -> Optional[str]:
    """The task kind of a call (one of :data:`KINDS`), or None.

    A mask loss (``use_mask=True``) and DFL are known by their module; a
    target of integer labels or a ``(labels, scores)`` tuple is
    classification; a float (N, 4) target for an (N, 4) prediction is box
    regression; a one-value-per-sample prediction with a float target of the
    same size is a quality branch.
    """
    pred, target = call.pred, call.target
    if getattr(module, 'use_mask', False):
        return 'mask'
    if type(module).__name__ == 'DistributionFocalLoss':
        return 'dfl'
    if isinstance(target, (tuple, list)):
        labels = target[0]
        return 'cls' if not labels.is_floating_point() else None
    if not target.is_floating_point():
        return 'cls' if pred.dim() == 2 else None
    if pred.dim() == 2 and pred.shape == target.shape and pred.size(1) == 4:
        return 'box'
    if pred.numel() == target.numel() and (
            pred.dim() == 1 or (pred.dim() == 2 and pred.size(1) == 1)):
        return 'quality'
    return None


def is_decoded(module: nn.Module, head: Optional[nn.Module]) -> bool:
    """Whether a box loss receives decoded boxes: every IoU-type loss of
    mmdet does (``IoULoss``, ``GIoULoss``, ``CIoULoss``...), and any loss of
    a head with ``reg_decoded_bbox=True``."""
    return 'IoU' in type(module).__name__ or bool(
        getattr(head, 'reg_decoded_bbox', False))


def owner(model: nn.Module, module: nn.Module) -> Optional[nn.Module]:
    """The module that holds ``module`` as a direct child (the head)."""
    for parent in model.modules():
        if any(child is module for child in parent.children()):
            return parent
    return None

