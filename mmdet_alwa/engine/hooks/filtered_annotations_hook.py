"""Makes the ground-truth boxes removed by ``CountingFilterAnnotations``
visible: one warning with the count, and a message-hub scalar."""
from typing import List

import torch
from mmengine import dist
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from mmdet_alwa.datasets.transforms.counting_filter import \
    CountingFilterAnnotations
from mmdet_alwa.weighting.validation import check_int

BOXES_KEY = 'train/filtered_gt_boxes'


def _find_filters(dataset) -> List[CountingFilterAnnotations]:
    """The counting filters in the pipelines of a (wrapped) dataset."""
    found, stack, seen = [], [dataset], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, CountingFilterAnnotations):
            found.append(obj)
            continue
        # dataset wrappers (Repeat/Concat/ClassBalanced/MultiImageMix...),
        # pipelines (Compose) and nested transforms (RandomChoice...)
        for attr in ('dataset', 'datasets', 'pipeline', 'transforms'):
            child = getattr(obj, attr, None)
            if isinstance(child, (list, tuple)):
                stack.extend(child)
            elif child is not None:
                stack.append(child)
    return found


@HOOKS.register_module()
class FilteredAnnotationsHook(Hook):
    """Warn once when the train pipeline removed degenerate boxes.

    Every ``interval`` training iterations, at the end of each epoch and of
    training, the counts of all :class:`CountingFilterAnnotations` of the
    train dataset (all dataloader workers, summed over DDP ranks) go to the
    message hub as ``train/filtered_gt_boxes`` (kept in checkpoints, so the
    total survives a resume). The first time it is above zero a warning
    names the count; a summary is logged at the end of training. Counts
    include batches that the workers have prefetched.

    Args:
        interval (int): check every so many iterations (>= 1).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50) -> None:
        self.interval = check_int('interval', interval)
        self._filters: List[CountingFilterAnnotations] = []
        self._before = 0
        self._warned = False

    def before_train(self, runner) -> None:
        self._filters = _find_filters(runner.train_dataloader.dataset)
        buffer = runner.message_hub.log_scalars.get(BOXES_KEY)
        self._before = int(buffer.current()) if buffer else 0
        self._warned = self._before > 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self._check(runner)

    def after_train_epoch(self, runner) -> None:
        self._check(runner)

    def after_train(self, runner) -> None:
        boxes, images = self._check(runner)
        if boxes:
            runner.logger.info(
                f'the train pipeline removed {boxes} degenerate ground-truth '
                f'boxes in total ({images} images were left without boxes)')

    def _check(self, runner):
        if not self._filters:
            return 0, 0
        local = torch.tensor([f.num_filtered() for f in self._filters],
                             dtype=torch.int64).sum(0)
        if dist.get_world_size() > 1:
            local = local.to(dist.get_comm_device())
            dist.all_reduce(local, op='sum')
        boxes, images = local.tolist()
        boxes += self._before
        runner.message_hub.update_scalar(BOXES_KEY, boxes)
        if boxes and not self._warned:
            self._warned = True
            spec = ', '.join(sorted({str(f.min_gt_bbox_wh)
                                     for f in self._filters}))
            runner.logger.warning(
                f'CountingFilterAnnotations removed {boxes} ground-truth '
                f'boxes not larger than min_gt_bbox_wh={spec} px in the first '
                f'{runner.iter + 1} iterations ({images} images were left '
                f'without boxes). Later totals are logged as {BOXES_KEY}; '
                f'tools/misc/check_dataset.py lists the annotation files.')
        return boxes, images
