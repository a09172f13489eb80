"""MATL's TripletRoIHead in real mmengine training runs on tiny data."""
import copy
import inspect
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict
from mmdet.registry import MODELS

from _helpers import config_path, load_tool, tiny_cfg
from mmdet_alwa.models.roi_heads.triplet_roi_head import META_KEY
from mmdet_alwa.utils import safe_checkpoint_loading

CFG = 'configs/matl/faster_rcnn_r50_matl_voc.py'


def _tool():
    return load_tool('tools/analysis_tools/cluster_boxes.py')


@pytest.fixture(scope='module')
def box_labels(tiny_data, tmp_path_factory):
    """The box-label JSON of the tiny training set, made by the tool."""
    out = tmp_path_factory.mktemp('matl') / 'box_labels.json'
    cfg = tiny_cfg(CFG, str(out.parent), tiny_data)
    _tool().main([_dump(cfg, out.parent / 'cfg.py'), '--out', str(out),
                  '--k', '3', '--k-range', '2', '4'])
    return str(out)


def _dump(cfg, path):
    cfg.dump(str(path))
    return str(path)


def _no_val(cfg):
    """Training only: the evaluation is not what these tests check."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def _matl_cfg(tiny_data, box_labels, work_dir, **kw):
    cfg = _no_val(tiny_cfg(CFG, work_dir, tiny_data, **kw))
    cfg.model.roi_head.box_clusters = box_labels
    return cfg


def _plain_model(cfg):
    """The same detector with mmdet's own StandardRoIHead."""
    model_cfg = copy.deepcopy(cfg.model)
    roi = model_cfg.roi_head
    for key in ('box_clusters', 'num_box_labels', 'embedding',
                'embed_channels', 'loss_triplet'):
        roi.pop(key, None)
    roi.type = 'StandardRoIHead'
    return MODELS.build(model_cfg)


def test_train_resume_and_plain_mmdet_load(tiny_data, box_labels, tmp_path):
    cfg = _matl_cfg(tiny_data, box_labels, str(tmp_path / 'a'), max_iters=4,
                    checkpoint_interval=2)
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    for key in ('loss_triplet', 'triplet_pos_frac_cls',
                'triplet_pos_frac_box'):
        assert torch.isfinite(torch.tensor(
            hub.get_scalar(f'train/{key}').current()))
    assert hub.get_scalar('train/loss_triplet').current() > 0
    head = runner.model.roi_head
    # on the shared FC output (tiny_cfg's fc_out_channels)
    assert head.embedding == 'shared'
    assert head.triplet_branch[0].in_features == 64

    # checkpoint: no branch keys, the branch sits in the metadata
    ckpt = torch.load(osp.join(cfg.work_dir, 'iter_2.pth'),
                      map_location='cpu', weights_only=False)
    sd = ckpt['state_dict']
    assert not [k for k in sd if 'triplet' in k]
    stash = sd._metadata['roi_head'][META_KEY]
    assert set(stash) == {f'triplet_branch.{i}.{p}' for i in (0, 2)
                          for p in ('weight', 'bias')}

    # plain mmdet Faster R-CNN: strict load, identical predictions
    plain = _plain_model(cfg)
    final = torch.load(osp.join(cfg.work_dir, 'iter_4.pth'),
                       map_location='cpu', weights_only=False)
    load_state_dict(plain, final['state_dict'], strict=True)
    plain.eval()
    runner.model.eval()
    batch = next(iter(runner.build_dataloader(cfg.test_dataloader)))
    with torch.no_grad():
        ours = runner.model.test_step(batch)
        theirs = plain.test_step(batch)
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)

    # resume from iteration 2 restores the branch, then trains on
    cfg2 = _matl_cfg(tiny_data, box_labels, str(tmp_path / 'b'), max_iters=4)
    cfg2.resume = True
    cfg2.load_from = osp.join(cfg.work_dir, 'iter_2.pth')
    runner2 = Runner.from_cfg(cfg2)
    fresh = runner2.model.roi_head.triplet_branch[0].weight.detach().clone()
    with safe_checkpoint_loading():  # as tools/train.py --resume
        runner2.load_or_resume()
    restored = runner2.model.roi_head.triplet_branch[0].weight
    assert torch.equal(restored, stash['triplet_branch.0.weight'])
    assert not torch.equal(restored, fresh)
    runner2.train()
    assert runner2.iter == 4


def _batch_all_eq1(emb, labels, margin):
    """Eq. 1 of the MATL paper, ``max(d(a, p) - d(a, n) + m, 0)``, over
    every triplet by brute force (all ``N^3`` index triples, float64): the
    mean of its positive terms, 0 without any."""
    d = torch.cdist(emb.double(), emb.double())
    n = len(labels)
    a, p, q = torch.meshgrid(*[torch.arange(n)] * 3, indexing='ij')
    valid = (labels[a] == labels[p]) & (a != p) & (labels[a] != labels[q])
    terms = (d[a, p] - d[a, q] + margin)[valid]
    positive = terms[terms > 0]
    return positive.mean().item() if len(positive) else 0.0


def test_class_only_config_needs_no_box_labels(tiny_data, tmp_path):
    """CLTL (box_weight 0): no box labels are read, and the logged
    ``loss_triplet`` is Eq. 1 over the class labels of the embeddings the
    loss module received."""
    cfg = _no_val(tiny_cfg('configs/matl/faster_rcnn_r50_cltl_voc.py',
                           str(tmp_path), tiny_data, max_iters=1))
    assert cfg.model.roi_head.box_clusters is None
    runner = Runner.from_cfg(cfg)
    calls = []

    def record(module, args, kwargs, output):
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        calls.append(dict(bound.arguments, output=output.item()))

    loss = runner.model.roi_head.loss_triplet
    assert loss.box_weight == 0 and loss.mining == 'batch_all'
    loss.register_forward_hook(record, with_kwargs=True)
    runner.train()
    assert len(calls) == 1  # one iteration, one call
    call = calls[0]
    assert call.get('box_labels') is None
    emb, labels = call['embeddings'].detach(), call['class_labels']
    assert len(labels) >= 3 and len(labels.unique()) >= 2  # triplets exist
    expected = _batch_all_eq1(emb, labels, loss.margin)
    assert expected > 0
    assert call['output'] == pytest.approx(expected, rel=1e-4)
    hub = runner.message_hub
    assert hub.get_scalar('train/loss_triplet').current() == \
        pytest.approx(call['output'], rel=1e-6)
    assert 'train/triplet_pos_frac_box' not in hub.log_scalars


def test_configs_and_bad_arguments(tiny_data, tmp_path):
    fields = {'faster_rcnn_r50_matl_voc.py': (0.5, 'shared'),
              'faster_rcnn_r50_matl_lambda025_voc.py': (0.25, 'shared'),
              'faster_rcnn_r50_matl_lambda075_voc.py': (0.75, 'shared'),
              'faster_rcnn_r50_cltl_voc.py': (0.0, 'shared'),
              'faster_rcnn_r50_matl_roi_voc.py': (0.5, 'roi'),
              'faster_rcnn_r18_matl_demo.py': (0.5, 'shared')}
    for name, (lam, embedding) in fields.items():
        cfg = Config.fromfile(config_path(f'configs/matl/{name}'))
        assert cfg.model.roi_head.type == 'TripletRoIHead'
        assert cfg.model.roi_head.loss_triplet.box_weight == lam
        assert cfg.model.roi_head.embedding == embedding
    cfg = tiny_cfg(CFG, str(tmp_path), tiny_data)
    cfg.model.roi_head.box_clusters = None
    with pytest.raises(ValueError, match='box_clusters'):
        MODELS.build(cfg.model)
    cfg.model.roi_head.box_clusters = str(tmp_path / 'missing.json')
    model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match='cluster_boxes.py'):
        model.roi_head.box_labels(torch.zeros(1, 4))


_DEMO = 'faster_rcnn_r18_matl_demo.py'


@pytest.mark.parametrize('base,line,attr,value', [
    ('faster_rcnn_r50_matl_voc.py',
     'model = dict(roi_head=dict(loss_triplet=dict(box_weight=0.25)))',
     'loss_triplet.box_weight', 0.25),
    (_DEMO, 'model = dict(roi_head=dict(loss_triplet=dict(box_weight=0.75)))',
     'loss_triplet.box_weight', 0.75),
    (_DEMO, 'model = dict(roi_head=dict(loss_triplet=dict(margin=0.3)))',
     'loss_triplet.margin', 0.3),
    (_DEMO, 'model = dict(roi_head=dict(loss_triplet=dict('
     "mining='batch_hard')))",
     'loss_triplet.mining', 'batch_hard'),
    (_DEMO, 'model = dict(roi_head=dict(num_box_labels=5))',
     'num_box_labels', 5),
    (_DEMO, "model = dict(roi_head=dict(embedding='roi'))", 'embedding', 'roi'),
])
def test_a_child_config_changes_a_knob_with_one_line(tmp_path, base, line,
                                                     attr, value):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = '{config_path('configs/matl/' + base)}'\n"
                     f'{line}\n')
    cfg = Config.fromfile(str(child))
    cfg.model.backbone.init_cfg = None  # no download
    head = MODELS.build(cfg.model).roi_head
    obj = head
    for part in attr.split('.'):
        obj = getattr(obj, part)
    assert obj == value
    # the other knobs keep the base's values
    if attr != 'loss_triplet.box_weight':
        assert head.loss_triplet.box_weight == 0.5
    if attr != 'loss_triplet.margin':
        assert head.loss_triplet.margin == 0.1


def test_matl_with_alwa1_and_triplet_as_a_balanced_task(tiny_data, box_labels,
                                                         tmp_path):
    cfg = _no_val(tiny_cfg('configs/matl/faster_rcnn_r50_matl_alwa1_voc.py',
                           str(tmp_path), tiny_data, max_iters=2))
    cfg.model.roi_head.box_clusters = box_labels
    assert cfg.default_hooks.alwa.rule.type == 'ALWA'
    # the triplet loss as a third task of a rule, next to the R-CNN losses
    cfg.default_hooks.dwa = dict(
        type='LossWeightingHook', name='dwa',
        rule=dict(type='DWA', tasks=('cls', 'reg', 'triplet'), interval=1),
        losses=dict(cls='roi_head.bbox_head.loss_cls',
                    reg='roi_head.bbox_head.loss_bbox',
                    triplet='roi_head.loss_triplet'))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    # two iterations: both rules still apply weight 1 (ALWA before its
    # interval of 100, DWA before two past losses), so the raw losses each
    # hook reads are the ones mmdet logs
    for raw, logged in (('alwa/raw_cls', 'loss_rpn_cls'),
                        ('alwa/raw_reg', 'loss_rpn_bbox'),
                        ('dwa/raw_cls', 'loss_cls'),
                        ('dwa/raw_reg', 'loss_bbox'),
                        ('dwa/raw_triplet', 'loss_triplet')):
        assert hub.get_scalar(f'train/{raw}').current() == pytest.approx(
            hub.get_scalar(f'train/{logged}').current(), rel=1e-5), raw
    assert hub.get_scalar('train/dwa/raw_triplet').current() > 0
