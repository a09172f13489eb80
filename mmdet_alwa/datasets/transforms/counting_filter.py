"""mmdet's ``FilterAnnotations`` that counts what it removes.

``FilterAnnotations`` drops degenerate ground-truth boxes silently. Here every
call adds the number of boxes it removed (and whether the image was left with
none) to a small tensor in shared memory. Dataloader workers are separate
processes: a plain Python counter in a worker is never seen by the main
process, but the shared tensor is (with the ``fork`` start method the mapping
is inherited, with ``spawn`` torch's pickler passes the storage by handle).
Each worker writes its own row, so no lock is needed; the main process sums
the rows. :class:`~mmdet_alwa.engine.hooks.FilteredAnnotationsHook` reads
the sums, all-reduces them over the DDP ranks and warns once.
"""
from typing import Optional, Tuple

import torch
from torch.utils.data import get_worker_info

from mmdet.datasets.transforms import FilterAnnotations
from mmdet.registry import TRANSFORMS

__all__ = ['CountingFilterAnnotations']

#: rows of the counter: the main process, then one per dataloader worker id
#: (ids beyond this share rows modulo; their updates may then race)
MAX_WORKERS = 64


@TRANSFORMS.register_module()
class CountingFilterAnnotations(FilterAnnotations):
    """``FilterAnnotations`` (same arguments) with a cross-process count.

    Place it after the geometric transforms (``Resize`` clips boxes to the
    image, so a box lying outside the image becomes zero-wide there), e.g.::

        dict(type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1),
             keep_empty=False)

    Note mmdet's naming: ``keep_empty=True`` *drops* an image whose boxes
    were all removed (the dataset then loads another one); ``False`` keeps it
    with no boxes.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # columns: boxes removed, images left without any box
        self.counts = torch.zeros((1 + MAX_WORKERS, 2),
                                  dtype=torch.int64).share_memory_()

    def transform(self, results: dict) -> Optional[dict]:
        before = len(results['gt_bboxes']) if 'gt_bboxes' in results else 0
        results = super().transform(results)
        after = 0 if results is None else len(results['gt_bboxes'])
        if after < before:
            info = get_worker_info()
            row = 0 if info is None else 1 + info.id % MAX_WORKERS
            self.counts[row, 0] += before - after
            self.counts[row, 1] += int(after == 0)
        return results

    def num_filtered(self) -> Tuple[int, int]:
        """(boxes removed, images left without boxes) by all processes."""
        boxes, images = self.counts.sum(0).tolist()
        return boxes, images
