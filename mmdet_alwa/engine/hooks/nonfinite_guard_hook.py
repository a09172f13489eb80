"""Reports and enforces the non-finite loss guard of the optimizer wrapper.

The guard itself lives in the optimizer wrapper
(:class:`~mmdet_alwa.engine.optimizers.NonFiniteGuardOptimWrapper`), the only
place that runs between the loss and the parameter update. The wrapper sees
only the total loss; this hook sees the iteration's loss terms (``outputs``)
and the batch, so when the wrapper flagged the iteration it names the terms
and image files, then raises (policy ``raise`` or too many consecutive skips)
or warns (policy ``skip``). It also keeps the number of skipped updates
(accumulation windows; iterations without accumulation) as the message-hub
scalar ``train/nonfinite_skips``, which is saved with the checkpoint and so
survives a resume. Under DDP the wrapper's verdict is all-reduced, so every
rank flags, counts and raises alike; a rank whose own loss was finite says
that another rank's was not.
"""
import math
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict

from mmdet.registry import HOOKS
from ..optimizers.nonfinite_guard import (NonFiniteGuardMixin,
                                          NonFiniteLossError)

SKIPS_KEY = 'train/nonfinite_skips'


def _is_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    return math.isfinite(float(value))


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Names the loss terms and images of a non-finite iteration.

    Put it in ``default_hooks`` (a dict, so that configs which set their own
    ``custom_hooks`` keep it) together with a ``NonFiniteGuard*OptimWrapper``.
    Runs first in ``after_train_iter`` so that no later hook (checkpoint,
    loss balancing) acts on an iteration that ends training.
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._guards: List[NonFiniteGuardMixin] = []
        self._skips_before = 0

    def before_train(self, runner) -> None:
        wrappers = runner.optim_wrapper
        if isinstance(wrappers, OptimWrapperDict):
            wrappers = list(wrappers.values())
        else:
            wrappers = [wrappers]
        self._guards = [w for w in wrappers
                        if isinstance(w, NonFiniteGuardMixin)]
        if not self._guards:
            runner.logger.warning(
                'NonFiniteGuardHook: the optimizer wrapper is not a '
                'NonFiniteGuard*OptimWrapper, non-finite losses are not '
                'guarded.')
        for guard in self._guards:
            guard.hook_attached = True
        buffer = runner.message_hub.log_scalars.get(SKIPS_KEY)
        self._skips_before = int(buffer.current()) if buffer else 0

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        skip_policy = False
        for guard in self._guards:
            skip_policy |= guard.nonfinite_policy == 'skip'
            if not guard.nonfinite_pending:
                continue
            guard.nonfinite_pending = False
            keys = [k for k, v in (outputs or {}).items()
                    if not _is_finite(v)]
            # 'loss' is the total: name it only if no term is to blame
            keys = [k for k in keys if k != 'loss'] or keys
            guard.batch_files = [
                s.metainfo.get('img_path', '?')
                for s in (data_batch or {}).get('data_samples', [])]
            message = guard.describe(keys)
            guard.batch_files = []
            if guard.must_raise():
                raise NonFiniteLossError(message)
            runner.logger.warning(f'skipped the update: {message}')
        if skip_policy:
            runner.message_hub.update_scalar(
                SKIPS_KEY, self._skips_before +
                sum(g.num_skipped for g in self._guards))
