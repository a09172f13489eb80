"""TDB's ``num_samples`` signal: :math:`n_j`, the number of samples task
:math:`j`'s loss is computed over in an iteration.

Per kind of loss call (:mod:`.loss_calls`): classification -- the samples
with a positive label weight (the sampled anchors/proposals; every
non-ignored anchor or point without a sampler); box regression, DFL and
quality branches -- the positives (rows with a positive weight; every row
when the call has no weight, as heads that pass only their positives do);
masks -- every instance of the call, whatever its class (Mask R-CNN passes
the instances' classes where other losses pass weights). A task whose count
stays 0 for ``warn_after`` iterations warns once.
"""
from typing import Dict, Union

from torch import Tensor

from .base import register_signal_provider
from .loss_inputs import LossInputProvider
from .measures import sample_mask

__all__ = ['NumSamplesProvider']


@register_signal_provider('num_samples')
class NumSamplesProvider(LossInputProvider):
    """TDB's :math:`n_j` (see the module docstring); arguments as
    :class:`~.loss_inputs.LossInputProvider`."""

    def measure(self, kind, name, module, head, call) -> list:
        pred, weight = call.pred, call.weight
        if kind == 'mask':
            return [pred.size(0)]
        if kind == 'cls':
            target = call.target
            labels = (target[0] if isinstance(target, (tuple, list))
                      else target).reshape(-1)
            return [(sample_mask(weight, labels.numel(), pred.device)
                     & (labels >= 0)).sum()]
        rows = pred.size(0) // 4 if kind == 'dfl' else pred.size(0)
        return [sample_mask(weight, rows, pred.device).sum()]

    def collect(self) -> Dict[str, Union[float, Tensor]]:
        # the counts stay on the device (float64: exact up to 2^53)
        return {t: self.stats[t][0] if t in self.stats else 0.0
                for t in self.loss_modules}

    def is_empty(self, value: float) -> bool:
        return not value > 0

    def empty_reason(self) -> str:
        return ('its loss modules were not called or had no sample with a '
                'positive weight')
