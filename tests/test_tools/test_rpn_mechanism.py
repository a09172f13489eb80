"""tools/analysis_tools/rpn_mechanism.py (issue 19): the counts against
cases worked out by hand, on the small-object demo detector's own
components (anchors 16-256 px on strides 4-64, ratios 0.5/1/2; the RPN's
MaxIoUAssigner 0.7/0.3, min_pos_iou 0.3; the RoI extractor's finest scale
56; the RoI sampler adds the gt boxes as proposals)."""
import json

import pytest
import torch
from mmengine.structures import InstanceData

from _helpers import config_path, load_tool, tiny_cfg

tool = load_tool('tools/analysis_tools/rpn_mechanism.py')
CONFIG = 'configs/demo/faster_rcnn_r18_small_demo.py'


@pytest.fixture(scope='module')
def model():
    from mmengine.config import Config

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config_path(CONFIG))
    return MODELS.build(cfg.model).eval()


def _gt(boxes, labels):
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                        labels=torch.tensor(labels))


def test_proposal_levels(model):
    """level = floor(log2(sqrt(w h) / 56)), clamped to 0..3: squares of
    20, 56, 111, 112, 224, 448 and 1000 px -> 0, 0, 0, 1, 2, 3, 3."""
    sizes = [20, 56, 111, 112, 224, 448, 1000]
    boxes = torch.tensor([[0., 0., s, s] for s in sizes])
    levels = tool.proposal_levels(model.roi_head.bbox_roi_extractor, boxes)
    assert levels.tolist() == [0, 0, 0, 1, 2, 3, 3]


def test_covered():
    """IoU of (21, 21, 30, 30) with (20, 20, 30, 30) is 81/100."""
    gt = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])
    props = torch.tensor([[0., 0., 10., 10.], [21., 21., 30., 30.]])
    assert tool.covered(gt, props, 0.5).tolist() == [True, True]
    assert tool.covered(gt, props, 0.85).tolist() == [True, False]
    assert tool.covered(gt, torch.zeros(0, 4), 0.5).tolist() == [False,
                                                                   False]


def test_anchor_positives(model):
    """A 128 px image: feature maps 32, 16, 8, 4, 2.
    - gt (32, 32, 96, 96), class 0, equals the square anchor of level 2
      (64 px, stride 16) at (64, 64): IoU 1; the neighbours of that level
      reach 3072/5120 = 0.6, its 0.5/2 ratios 2896/5296 = 0.55, levels 1
      and 3 0.25: one positive, on level 2;
    - gt (4, 4, 12, 12), class 1, 8 px: its best anchor (level 0's 16 px
      square at (8, 8)) has IoU 64/256 = 0.25 < min_pos_iou 0.3: none.
    The objectness of the level-2 square anchor at (4, 4) is set to
    logit 2: sigmoid(2) = 0.8808 (anchor order: row, column, ratio)."""
    sizes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    scores = [torch.zeros(3, h, w) for h, w in sizes]
    scores[2][1, 4, 4] = 2.0
    gt = _gt([[32, 32, 96, 96], [4, 4, 12, 12]], [0, 1])
    pos = tool.anchor_positives(model.rpn_head, sizes, gt, scores)
    assert pos['level'].tolist() == [2]
    assert pos['gt_label'].tolist() == [0]
    assert pos['gt_num_pos'].tolist() == [1, 0]
    assert pos['objectness'].tolist() == pytest.approx([0.880797])


def test_roi_positives(model):
    """gt A (0, 0, 10, 10) class 0, B (50, 50, 70, 70) class 1; proposals
    A itself (IoU 1), (1, 1, 10, 10) (IoU 81/100) and a far box. The RoI
    assigner's 0.5: A gets 2 proposals + itself as a proposal, B itself
    only; 4 positives fit the sampler's 32 (128 x 0.25)."""
    gt = _gt([[0, 0, 10, 10], [50, 50, 70, 70]], [0, 1])
    props = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [100., 100., 120., 120.]])
    pos = tool.roi_positives(model.roi_head, props, gt)
    labels, is_gt = pos['gt_label'].tolist(), pos['is_gt'].tolist()
    assert sorted(labels) == [0, 0, 0, 1]
    assert sorted(lab for lab, g in zip(labels, is_gt) if not g) == [0, 0]


def test_tally_report():
    """Two images by hand; class b is the small one."""
    t = tool.Tally(['a', 'b'], num_levels=4, num_anchor_levels=5,
                   small=['b'])
    t.add_gts(torch.tensor([0, 1, 1]))
    t.add_gts(torch.tensor([1]))
    # image 1, test proposals on levels 0, 0, 2; gt 0 and the first b
    # covered; image 2: one proposal on level 3, its b not covered
    t.add_proposals('test', torch.tensor([0, 0, 2]), torch.tensor([0, 1, 1]),
                    torch.tensor([True, True, False]))
    t.add_proposals('test', torch.tensor([3]), torch.tensor([1]),
                    torch.tensor([False]))
    # image 1: a has 2 positive anchors, the first b 1, the second b none
    t.add_anchors(dict(level=torch.tensor([2, 2, 0]),
                       gt_label=torch.tensor([0, 0, 1]),
                       gt_num_pos=torch.tensor([2, 1, 0]),
                       gt_labels=torch.tensor([0, 1, 1]),
                       objectness=torch.tensor([0.9, 0.7, 0.2])))
    t.add_anchors(dict(level=torch.zeros(0, dtype=torch.long),
                       gt_label=torch.zeros(0, dtype=torch.long),
                       gt_num_pos=torch.tensor([0]),
                       gt_labels=torch.tensor([1])))
    t.add_roi(dict(gt_label=torch.tensor([0, 0, 1, 1]),
                   is_gt=torch.tensor([True, False, True, True])))
    rep = t.report()
    assert rep['images'] == 2 and rep['num_gts'] == {'a': 1, 'b': 3}
    assert rep['proposals_per_level']['test'] == [1.0, 0.0, 0.5, 0.5]
    assert rep['proposal_recall']['test'] == {'a': 1.0, 'b': 1 / 3}
    assert rep['positive_anchors']['per_level'] == [1, 0, 2, 0, 0]
    assert rep['positive_anchors']['per_gt'] == {'a': 2.0, 'b': 1 / 3}
    assert rep['positive_anchors']['gts_without'] == {'a': 0.0, 'b': 2 / 3}
    assert rep['small']['gts_without_positive_anchor'] == 2 / 3
    assert rep['objectness_of_positives']['a'] == pytest.approx(0.8)
    assert rep['roi_positives']['per_class_without_gt'] == {'a': 1, 'b': 0}
    assert rep['small']['proposal_recall']['test'] == pytest.approx(1 / 3)
    assert rep['small']['objectness_of_positives'] == pytest.approx(0.2)
    assert rep['small']['roi_positives_per_gt_without_gt'] == 0.0


def test_main_on_a_tiny_checkpoint(tmp_path, tiny_data):
    """End to end on an untrained tiny detector saved as a checkpoint: the
    figures are consistent (proposals per level sum to at most the
    configured number, recalls in [0, 1], one entry per class)."""
    from mmdet.registry import MODELS
    cfg = tiny_cfg(CONFIG, str(tmp_path), tiny_data)
    cfg.model.train_cfg.rpn_proposal.max_per_img = 50
    cfg.model.test_cfg.rpn.max_per_img = 20
    config = str(tmp_path / 'config.py')
    cfg.dump(config)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    out = str(tmp_path / 'mech.json')
    tool.main([config, ckpt, '--out', out])
    rep = json.load(open(out))
    assert rep['images'] == 4 and rep['small_classes'] == ['disc']
    assert 0 < sum(rep['proposals_per_level']['test']) <= 20
    assert 0 < sum(rep['proposals_per_level']['train']) <= 50
    for mode in ('test', 'train'):
        for value in rep['proposal_recall'][mode].values():
            assert value is None or 0.0 <= value <= 1.0
    roi = rep['roi_positives']
    for name, n in roi['per_class'].items():
        # every gt box is a positive of its own (added as a proposal)
        assert n - roi['per_class_without_gt'][name] == \
            rep['num_gts'][name]
    with pytest.raises(ValueError, match='not classes of the dataset'):
        tool.main([config, ckpt, '--small-classes', 'dot'])
