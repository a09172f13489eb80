"""tools/analysis_tools/matl_study.py: the per-object metric and the cells."""

import pytest
import torch

from _helpers import load_tool

study = load_tool('tools/analysis_tools/matl_study.py')


def _sample(gt, gt_labels, pred, scores, labels):
    t = torch.tensor
    return dict(
        gt_instances=dict(bboxes=t(gt, dtype=torch.float32).reshape(-1, 4),
                          labels=t(gt_labels)),
        pred_instances=dict(
            bboxes=t(pred, dtype=torch.float32).reshape(-1, 4),
            scores=t(scores, dtype=torch.float32), labels=t(labels).long()))


def test_matched_detection_metric_by_hand():
    metric = study.MatchedDetectionMetric()
    # A (class 0): two detections with IoU >= 0.5, the higher-scoring one of
    # the wrong class; B (class 1): one right, IoU 80/100 = 0.8 (a 10x8 box
    # inside the 10x10 gt); C (class 2): only IoU 25/100 = 0.25 -> missed
    metric.process(None, [_sample(
        gt=[[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]],
        gt_labels=[0, 1, 2],
        pred=[[0, 0, 10, 10], [0, 0, 10, 9], [20, 0, 30, 8],
              [40, 0, 45, 5]],
        scores=[0.6, 0.9, 0.7, 0.99], labels=[0, 1, 1, 2])])
    # an image whose object the detector missed entirely (no detections)
    metric.process(None, [_sample(gt=[[0, 0, 10, 10]], gt_labels=[3],
                                  pred=[], scores=[], labels=[])])
    out = metric.compute_metrics(metric.results)
    # answers: A -> the 0.9 box (class 1, IoU 90/100), B -> IoU 0.8
    assert out['acc'] == pytest.approx(1 / 4)
    assert out['recall'] == pytest.approx(2 / 4)
    assert out['iou'] == pytest.approx((0.9 + 0.8) / 2)


@pytest.mark.parametrize('cell,head,embedding,box_weight', [
    ('none', 'StandardRoIHead', None, None),
    ('cltl', 'TripletRoIHead', 'shared', 0.0),
    ('matl_0.75', 'TripletRoIHead', 'shared', 0.75),
    ('roi_matl_0.5', 'TripletRoIHead', 'roi', 0.5),
])
def test_cells(tmp_path, cell, head, embedding, box_weight):
    cfg = study.study_cfg(cell, 3, str(tmp_path), '/data/', '/data/b.json',
                          epochs=4, num_train=320)
    roi = cfg.model.roi_head
    assert roi.type == head and cfg.randomness.seed == 3
    if embedding:
        assert roi.embedding == embedding
        assert roi.loss_triplet.box_weight == box_weight
        assert roi.box_clusters == (None if box_weight == 0 else
                                    '/data/b.json')
    else:
        assert 'loss_triplet' not in roi
    assert cfg.train_cfg.max_epochs == 4
    assert cfg.param_scheduler[0].end == 32  # 40 iterations/epoch // 5
    assert cfg.train_dataloader.dataset.data_root == '/data/'


def test_table_pairs_the_seeds():
    def row(cell, seed, acc, m):
        return dict(cell=cell, seed=seed, acc=acc, iou=0.5, recall=0.5,
                    bbox_mAP=m, bbox_mAP_50=m)
    rows = [row('none', 0, 0.2, 0.1), row('none', 1, 0.4, 0.3),
            row('cltl', 1, 0.7, 0.3), row('cltl', 0, 0.3, 0.2)]
    lines = study.table(rows, ['none', 'cltl']).splitlines()
    cltl = [c.strip() for c in lines[3].split('|')[1:-1]]
    assert cltl[:3] == ['cltl', '1,0', '0.500 ± 0.283']  # acc .7, .3
    # paired: acc +0.1 (seed 0), +0.3 (seed 1); mAP +0.1, 0
    assert cltl[-3] == '0.200 ± 0.141'
    assert cltl[-1] == '0.050 ± 0.071'
