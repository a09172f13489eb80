"""TripletRoIHead: where the triplet gradient goes, which labels each RoI
gets, which RoIs take part, and what its checkpoints load into."""
import copy
import json

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict
from mmengine.structures import InstanceData

from _helpers import tiny_cfg
from mmdet_alwa.models.roi_heads.triplet_roi_head import (EMBED_META_KEY,
                                                          META_KEY,
                                                          capture_shared)

CFG = 'configs/matl/faster_rcnn_r50_matl_voc.py'
register_all_modules(init_default_scope=True)  # the dataloader's CocoDataset


def _cfg(tiny_data, tmp_path, embedding, clusters=None):
    cfg = tiny_cfg(CFG, str(tmp_path), tiny_data)
    cfg.model.roi_head.embedding = embedding
    cfg.model.roi_head.box_clusters = clusters or _clusters(tmp_path)
    cfg.model.roi_head.num_box_labels = 4
    return cfg


def _clusters(tmp_path):
    """Hand-made box labels. Normalised features are (w/100, h/100,
    area/10^4, squareness); label 0: small square, 1: wide, 2: tall,
    3: large square."""
    path = tmp_path / 'clusters.json'
    path.write_text(json.dumps(dict(
        features=['width', 'height', 'area', 'squareness'],
        feature_min=[0, 0, 0, 0], feature_max=[100, 100, 10000, 1],
        centroids=[[.1, .1, .01, 0], [.6, .15, .09, .75],
                   [.15, .6, .09, .75], [.5, .5, .25, 0]])))
    return str(path)


def _plain(model_cfg):
    """The same detector with mmdet's own StandardRoIHead."""
    roi = model_cfg.roi_head
    for key in ('box_clusters', 'num_box_labels', 'embedding',
                'embed_channels', 'loss_triplet'):
        roi.pop(key, None)
    roi.type = 'StandardRoIHead'
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('embedding,embed_channels,reaches', [
    ('shared', 128, True), ('shared', None, True), ('roi', 128, False)])
def test_triplet_gradient_reaches_the_shared_fcs_only_by_default(
        tiny_data, tmp_path, embedding, embed_channels, reaches):
    cfg = _cfg(tiny_data, tmp_path, embedding)
    cfg.model.roi_head.embed_channels = embed_channels
    model = MODELS.build(cfg.model)
    if embed_channels is None:  # no projection, nothing to stash
        assert len(model.roi_head.triplet_branch) == 0
        load_state_dict(_plain(copy.deepcopy(cfg.model)), model.state_dict(),
                        strict=True)
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses['loss_triplet'] > 0
    head = model.roi_head
    shared = list(head.bbox_head.shared_fcs.parameters())
    own = list(head.triplet_branch.parameters())
    grads = torch.autograd.grad(losses['loss_triplet'],
                                shared + own + list(model.neck.parameters()),
                                allow_unused=True)
    shared_g, own_g = grads[:len(shared)], grads[len(shared):len(shared) +
                                                 len(own)]
    neck_g = grads[len(shared) + len(own):]
    if reaches:
        assert all(g is not None and g.abs().sum() > 0 for g in shared_g)
    else:
        assert all(g is None for g in shared_g)
    # both variants train their projection and the features under RoIAlign
    assert all(g is not None and g.abs().sum() > 0 for g in own_g)
    assert any(g is not None and g.abs().sum() > 0 for g in neck_g)
    # the classifier and the regressor are not part of the triplet loss
    assert torch.autograd.grad(
        losses['loss_triplet'], head.bbox_head.fc_cls.weight,
        allow_unused=True)[0] is None


def test_captured_shared_features_are_what_cls_and_reg_read(tiny_data,
                                                            tmp_path):
    head = MODELS.build(_cfg(tiny_data, tmp_path, 'shared').model).roi_head
    bh = head.bbox_head
    feats = torch.randn(5, 32, 7, 7)
    with capture_shared(bh) as store:
        cls_score, bbox_pred = bh(feats)
    assert store['layer'] == 'shared_fcs.1'
    # Shared2FC by hand: flatten, fc, relu, fc, relu
    x = feats.flatten(1)
    for fc in bh.shared_fcs:
        x = (x @ fc.weight.t() + fc.bias).clamp(min=0)
    assert torch.allclose(store['feats'], x, atol=1e-5)
    assert torch.allclose(cls_score, x @ bh.fc_cls.weight.t() + bh.fc_cls.bias,
                          atol=1e-5)
    assert torch.allclose(bbox_pred, x @ bh.fc_reg.weight.t() + bh.fc_reg.bias,
                          atol=1e-5)


def _sample(boxes, labels, img_shape, scale=1.0):
    s = DetDataSample(metainfo=dict(img_shape=img_shape, pad_shape=img_shape,
                                    scale_factor=(scale, scale)))
    s.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long))
    return s


def _shift(box, d):
    return [box[0] + d, box[1], box[2] + d, box[3]]


@pytest.mark.parametrize('embedding', ['shared', 'roi'])
def test_each_positive_roi_gets_its_gt_boxs_labels(tiny_data, tmp_path,
                                                   embedding):
    cfg = _cfg(tiny_data, tmp_path, embedding)
    head = MODELS.build(cfg.model).roi_head
    head.train()
    # planted gt boxes with their labels worked out by hand from _clusters:
    # (box, class, box label)
    img0 = [([10, 10, 20, 20], 2, 0),    # 10x10: small square
            ([30, 40, 90, 55], 0, 1),    # 60x15: wide
            ([150, 5, 165, 65], 2, 2)]   # 15x60: tall
    # resized by 2.5: 50x50 in the input, 20x20 (small square, label 0) in
    # the original image; read without the scale it would be a large square
    img1 = [([60, 60, 110, 110], 4, 0)]
    planted = [img0, img1]
    samples = [_sample([b for b, _, _ in img0], [c for _, c, _ in img0],
                       (128, 192)),
               _sample([b for b, _, _ in img1], [c for _, c, _ in img1],
                       (128, 192), scale=2.5)]
    # proposals: each gt shifted by 1-2 px (IoU > 0.8 with it, < 0.1 with the
    # others) and background boxes far from every gt (IoU 0)
    origin = {}
    proposals = []
    for i, objs in enumerate(planted):
        props = []
        for j, (box, _, _) in enumerate(objs):
            for d in (1, -1, 2):
                props.append(_shift(box, d))
                origin[(i, tuple(float(v) for v in _shift(box, d)))] = j
            origin[(i, tuple(float(v) for v in box))] = j  # the gt itself
        background = [[120, 90, 140, 120], [170, 100, 190, 126]] if i == 0 \
            else [[5, 5, 25, 30], [150, 10, 185, 40]]
        proposals.append(InstanceData(
            bboxes=torch.tensor(props + background, dtype=torch.float32)))
    x = tuple(torch.randn(2, 32, 128 // s, 192 // s) for s in (4, 8, 16, 32))

    seen = {}
    bbox_loss, triplet = head.bbox_loss, head.loss_triplet.forward

    def record_bbox_loss(feats, sampling_results):
        seen['sampling'] = sampling_results
        return bbox_loss(feats, sampling_results)

    def record_triplet(emb, cls_labels, box_labels=None):
        seen.update(emb=emb, cls=cls_labels, box=box_labels)
        return triplet(emb, cls_labels, box_labels)

    head.bbox_loss = record_bbox_loss
    head.loss_triplet.forward = record_triplet
    losses = head.loss(x, proposals, samples)

    want_cls, want_box = [], []
    num_neg = 0
    for i, res in enumerate(seen['sampling']):
        for box in res.pos_priors.tolist():
            j = origin[(i, tuple(box))]  # KeyError: a background positive
            want_cls.append(planted[i][j][1])
            want_box.append(planted[i][j][2])
        num_neg += len(res.neg_priors)
    assert num_neg > 0  # there were background RoIs, and they stay out:
    assert len(seen['emb']) == len(want_cls) == 4 * 4  # 3 shifts + gt each
    assert seen['cls'].tolist() == want_cls
    assert seen['box'].tolist() == want_box
    assert losses['loss_triplet'] > 0


def test_no_gt_no_positive_gives_a_connected_zero(tiny_data, tmp_path):
    head = MODELS.build(_cfg(tiny_data, tmp_path, 'shared').model).roi_head
    head.train()
    samples = [_sample([], [], (64, 96))]
    proposals = [InstanceData(bboxes=torch.tensor([[5., 5., 30., 30.],
                                                   [40., 10., 90., 60.]]))]
    x = tuple(torch.randn(1, 32, 64 // s, 96 // s, requires_grad=True)
              for s in (4, 8, 16, 32))
    losses = head.loss(x, proposals, samples)
    assert losses['loss_triplet'].item() == 0
    losses['loss_triplet'].backward()  # still part of the graph (DDP)
    assert head.triplet_branch[0].weight.grad is not None


@pytest.mark.parametrize('embedding', ['shared', 'roi'])
def test_checkpoint_loads_strictly_into_plain_mmdet(tiny_data, tmp_path,
                                                    embedding):
    cfg = _cfg(tiny_data, tmp_path, embedding)
    model = MODELS.build(cfg.model)
    sd = model.state_dict()
    assert not [k for k in sd if 'triplet' in k]
    meta = sd._metadata['roi_head']
    assert meta[EMBED_META_KEY] == embedding
    assert set(meta[META_KEY]) == {f'triplet_branch.{i}.{p}' for i in (0, 2)
                                   for p in ('weight', 'bias')}
    plain = _plain(copy.deepcopy(cfg.model))
    load_state_dict(plain, sd, strict=True)
    assert torch.equal(plain.roi_head.bbox_head.fc_cls.weight,
                       model.roi_head.bbox_head.fc_cls.weight)
    # and back into a MATL model, branch included
    again = MODELS.build(cfg.model)
    load_state_dict(again, sd, strict=True)
    assert torch.equal(again.roi_head.triplet_branch[2].weight,
                       model.roi_head.triplet_branch[2].weight)
    # a branch of the other variant is refused with the fix in the message
    other = 'roi' if embedding == 'shared' else 'shared'
    cfg.model.roi_head.embedding = other
    with pytest.raises(ValueError, match=f"embedding='{embedding}'"):
        load_state_dict(MODELS.build(cfg.model), sd, strict=True)


def test_heads_without_a_shared_layer_are_refused(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, tmp_path, 'shared')
    cfg.model.roi_head.bbox_head = dict(
        type='DoubleConvFCBBoxHead', num_convs=1, num_fcs=1, in_channels=32,
        conv_out_channels=32, fc_out_channels=64, roi_feat_size=7,
        num_classes=5,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                        target_stds=[.1, .1, .2, .2]),
        reg_class_agnostic=False,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                      loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    with pytest.raises(ValueError, match="DoubleConvFCBBoxHead.*"
                       "embedding='roi'"):
        MODELS.build(cfg.model)
    cfg.model.roi_head.embedding = 'roi'  # the RoI features: accepted
    MODELS.build(cfg.model)
    cfg.model.roi_head.embedding = 'encoder'
    with pytest.raises(ValueError, match='embedding must be one of'):
        MODELS.build(cfg.model)


def test_k_of_the_box_label_file_must_match(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, tmp_path, 'shared')  # the file holds 4 labels
    cfg.model.roi_head.num_box_labels = 3
    head = MODELS.build(cfg.model).roi_head
    with pytest.raises(ValueError, match='4 box labels.*num_box_labels is 3'):
        head.box_labels(torch.zeros(1, 4))
    cfg.model.roi_head.num_box_labels = 4
    head = MODELS.build(cfg.model).roi_head
    assert head.box_labels(torch.tensor([[0., 0., 60., 15.]])).tolist() == [1]
