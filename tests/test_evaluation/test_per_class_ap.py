"""PerClassAPMetric (issue 19) against values worked out by hand.

Two classes ``a``, ``b``; two images (boxes x1, y1, x2, y2, COCO-style
widths x2 - x1):

    image 1  gt a: A1 = (0, 0, 10, 10), A2 = (20, 20, 30, 30)
             gt b: B1 = (50, 50, 70, 70)
    image 2  gt b: B2 = (0, 0, 20, 20)          (no gt of class a)

Detections of ``a``, by score:

    0.9  image 1 (0, 0, 10, 10)     IoU 1 with A1             TP
    0.8  image 2 (0, 0, 20, 20)     no gt of a in image 2     FP
    0.6  image 1 (21, 21, 30, 30)   IoU 81/100 = 0.81 with A2 TP
    0.4  image 1 (0, 0, 10, 10)     A1 already matched        FP

cumulated TP 1, 1, 2, 2 and FP 0, 1, 1, 2 over 2 gt: recall 1/2, 1/2, 1, 1;
precision 1, 1/2, 2/3, 1/2. Area under the precision envelope (VOC2010+):
recall 0 -> 1/2 at precision 1, 1/2 -> 1 at max(2/3, 1/2) = 2/3:
AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; recall with every detection kept: 1.
Class ``b`` has no detection: AP 0, recall 0, 0 detections, 2 gt.
mean AP@0.5 over the classes with a gt: (5/6 + 0) / 2 = 5/12.
"""
import pytest
import torch

from mmdet_alwa.evaluation import PerClassAPMetric


def _sample(gt_boxes, gt_labels, det_boxes, det_scores, det_labels):
    t = torch.tensor
    return dict(
        gt_instances=dict(bboxes=t(gt_boxes, dtype=torch.float32).view(-1, 4),
                          labels=t(gt_labels, dtype=torch.int64)),
        ignored_instances=dict(bboxes=torch.zeros(0, 4),
                               labels=torch.zeros(0, dtype=torch.int64)),
        pred_instances=dict(
            bboxes=t(det_boxes, dtype=torch.float32).view(-1, 4),
            scores=t(det_scores, dtype=torch.float32),
            labels=t(det_labels, dtype=torch.int64)))


def _samples():
    image1 = _sample([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 70, 70]],
                     [0, 0, 1],
                     [[0, 0, 10, 10], [21, 21, 30, 30], [0, 0, 10, 10]],
                     [0.9, 0.6, 0.4], [0, 0, 0])
    image2 = _sample([[0, 0, 20, 20]], [1], [[0, 0, 20, 20]], [0.8], [0])
    return [image1, image2]


def _evaluate(metric, batches):
    metric.dataset_meta = dict(classes=('a', 'b'))
    for batch in batches:
        metric.process({}, batch)
    return metric.evaluate(sum(len(b) for b in batches))


def test_hand_worked_values():
    out = _evaluate(PerClassAPMetric(), [_samples()])
    assert out['per_class/a_AP50'] == pytest.approx(5 / 6)
    assert out['per_class/a_recall'] == pytest.approx(1.0)
    assert out['per_class/a_num_dets'] == 4
    assert out['per_class/a_num_gts'] == 2
    assert out['per_class/b_AP50'] == 0.0
    assert out['per_class/b_recall'] == 0.0
    assert out['per_class/b_num_dets'] == 0
    assert out['per_class/b_num_gts'] == 2
    assert out['per_class/mAP50'] == pytest.approx(5 / 12)


def test_batches_and_prefix():
    """One image per batch gives the same numbers; the prefix names the
    keys that collect_table.py reads (<prefix>/<class>_AP50, _recall)."""
    samples = _samples()
    out = _evaluate(PerClassAPMetric(prefix='val'),
                    [[samples[0]], [samples[1]]])
    assert out['val/a_AP50'] == pytest.approx(5 / 6)
    assert out['val/b_recall'] == 0.0
    assert out['val/mAP50'] == pytest.approx(5 / 12)


def test_recall_is_the_last_detection_and_11points():
    """Without the 0.6 detection: class a has TP, FP, FP; recall 1/2.
    11-point AP (VOC2007): precision 1 at recalls 0, 0.1, ..., 0.5 (6 of
    the 11 points), none above: AP = 6/11."""
    image1, image2 = _samples()
    keep = torch.tensor([True, False, True])
    pred = image1['pred_instances']
    image1['pred_instances'] = {k: v[keep] for k, v in pred.items()}
    out = _evaluate(PerClassAPMetric(eval_mode='11points'),
                    [[image1, image2]])
    assert out['per_class/a_recall'] == pytest.approx(0.5)
    assert out['per_class/a_AP50'] == pytest.approx(6 / 11)
    assert out['per_class/a_num_dets'] == 3


def test_collect_table_reads_the_keys():
    from _helpers import load_tool
    collect = load_tool('tools/experiments/collect_table.py')
    out = _evaluate(PerClassAPMetric(prefix='per_class'), [_samples()])
    values = collect.per_class_values(out)
    assert values[('a', 'AP50')] == pytest.approx(5 / 6)
    assert values[('b', 'recall')] == 0.0
    assert not any(cls in ('m', 'mAP50') for cls, _ in values)


@pytest.mark.parametrize('kwargs', [dict(iou_thr=1.5), dict(iou_thr=1),
                                    dict(eval_mode='coco'), dict(nproc=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match='PerClassAPMetric'):
        PerClassAPMetric(**kwargs)


def test_needs_class_names():
    metric = PerClassAPMetric()
    with pytest.raises(ValueError, match='classes'):
        metric.process({}, _samples())


def test_through_the_runner(tmp_path, tiny_data):
    """The small-object demo config's evaluators (CocoMetric and this one),
    shrunk: validation logs the per-class keys collect_table.py reads."""
    import glob
    import json

    from mmengine.config import Config
    from mmengine.runner import Runner

    from _helpers import config_path, tiny_cfg
    config = 'configs/demo/faster_rcnn_r18_small_demo.py'
    evaluators = Config.fromfile(config_path(config)).val_evaluator
    assert [e['type'] for e in evaluators] == ['CocoMetric',
                                               'PerClassAPMetric']
    cfg = tiny_cfg(config, str(tmp_path), tiny_data, max_iters=2)
    cfg.val_evaluator = [cfg.val_evaluator, dict(type='PerClassAPMetric')]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    Runner.from_cfg(cfg).train()
    (scalars,) = glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))
    records = [json.loads(ln) for ln in open(scalars) if ln.strip()]
    val = [r for r in records if 'per_class/mAP50' in r]
    assert len(val) == 1 and 'coco/bbox_mAP_50' in val[0]
    from mmdet_alwa.datasets.demo_data import DEMO_CLASSES
    for name in DEMO_CLASSES:
        assert 0.0 <= val[0][f'per_class/{name}_AP50'] <= 1.0
        assert 0.0 <= val[0][f'per_class/{name}_recall'] <= 1.0
        assert val[0][f'per_class/{name}_num_dets'] >= 0
