"""CountingFilterAnnotations counts across dataloader worker processes, and a
real Runner run on data with a planted degenerate box trains with finite
losses and reports the count once."""
import glob
import json
import math
import shutil

import numpy as np
import pytest
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

from _helpers import make_tiny_voc, tiny_cfg, voc_xml
from mmdet.registry import TRANSFORMS
from mmdet_alwa.datasets.demo_data import DEMO_CLASSES
from mmdet_alwa.engine.hooks.filtered_annotations_hook import \
    FilteredAnnotationsHook
from mmdet.structures.bbox import HorizontalBoxes


class _Boxes(Dataset):
    """Item i has 3 boxes, of which i % 3 are zero-wide."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 12

    def __getitem__(self, i):
        boxes = np.array([[0, 0, 5, 5]] * 3, dtype=np.float32)
        boxes[:i % 3, 2] = 0
        out = self.transform(dict(
            gt_bboxes=HorizontalBoxes(boxes),
            gt_bboxes_labels=np.zeros(3, np.int64),
            gt_ignore_flags=np.zeros(3, bool)))
        return len(out['gt_bboxes'])


@pytest.mark.parametrize('workers', [0, 2])
def test_counts_reach_the_main_process(workers):
    transform = TRANSFORMS.build(dict(
        type='CountingFilterAnnotations', min_gt_bbox_wh=(1, 1),
        keep_empty=False))
    loader = DataLoader(_Boxes(transform), batch_size=4,
                        num_workers=workers, multiprocessing_context='fork'
                        if workers else None)
    kept = [int(n) for batch in loader for n in batch]
    assert kept == [3 - i % 3 for i in range(12)]
    assert transform.num_filtered() == (4 * 1 + 4 * 2, 0)


def test_bad_interval():
    with pytest.raises(ValueError, match='interval'):
        FilteredAnnotationsHook(interval=0)


def _train_and_check(cfg, work_dir):
    """4 iterations with the counting filter and its hook: finite losses,
    the planted box counted, one warning."""
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    pipeline = [t for t in cfg.train_dataloader.dataset.pipeline
                if 'FilterAnnotations' not in t['type']]
    pipeline.insert(-1, dict(type='CountingFilterAnnotations',
                             min_gt_bbox_wh=(1, 1), keep_empty=False))
    cfg.train_dataloader.update(
        num_workers=2, persistent_workers=True,
        dataset=dict(cfg.train_dataloader.dataset, pipeline=pipeline))
    cfg.default_hooks.filtered_annotations = dict(
        type='FilteredAnnotationsHook', interval=2)
    runner = Runner.from_cfg(cfg)
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    # 4 iterations x 2 images = one pass; prefetching may have loaded the
    # planted image once more
    count = runner.message_hub.get_scalar('train/filtered_gt_boxes').current()
    assert count in (1, 2)
    log = open(glob.glob(f'{work_dir}/*/*.log')[0]).read()
    assert log.count('CountingFilterAnnotations removed') == 1, log


def test_runner_reports_planted_box(tiny_data, tmp_path):
    data = str(tmp_path / 'data')
    shutil.copytree(tiny_data, data)
    ann_file = f'{data}/annotations/train.json'
    with open(ann_file) as f:
        coco = json.load(f)
    # kept by mmdet's COCO loader (it overlaps the 96 px wide image), but
    # Resize clips it to 0.5 px: a degenerate box in the pipeline
    coco['annotations'].append(dict(
        id=len(coco['annotations']), image_id=3, category_id=1,
        bbox=[95.5, 10, 6, 12], area=72, iscrowd=0))
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    work_dir = str(tmp_path / 'run')
    _train_and_check(tiny_cfg('configs/_base_/faster_rcnn_r50_voc.py',
                              work_dir, data, max_iters=4), work_dir)


def test_runner_on_voc_with_a_zero_size_box(tiny_data, tmp_path):
    """VOC keeps a zero-width box (the COCO loader drops it), so it reaches
    the pipeline as written in the annotation."""
    root = str(tmp_path / 'VOCdevkit')
    make_tiny_voc(tiny_data, root)
    with open(f'{root}/VOC2007/Annotations/000000.xml', 'w') as f:
        f.write(voc_xml([('disc', [20, 10, 20, 30]),      # zero width
                         ('square', [5, 5, 25, 25])]))
    work_dir = str(tmp_path / 'run')
    cfg = tiny_cfg('configs/_base_/faster_rcnn_r50_voc.py', work_dir,
                   tiny_data, max_iters=4)
    cfg.train_dataloader.dataset = dict(
        type='VOCDataset', data_root=root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=DEMO_CLASSES),
        pipeline=cfg.train_dataloader.dataset.pipeline)
    # 4 iterations of 1 image in order: the planted image comes first
    cfg.train_dataloader.update(
        batch_size=1, sampler=dict(type='DefaultSampler', shuffle=False))
    _train_and_check(cfg, work_dir)
