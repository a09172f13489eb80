"""The signal providers on real mmdet loss modules, called the ways mmdet's
heads call them (positional or keyword weight, no weight, QFL tuples, the
mask loss's labels); expectations worked out by hand in the comments."""
import math
from unittest import mock

import pytest
import torch
from torch import nn

from mmdet.registry import MODELS, TASK_UTILS
from mmdet_alwa.engine.hooks.signals import build_signal_provider


def _loss(**cfg):
    return MODELS.build(cfg)


class Head(nn.Module):
    def __init__(self, use_sigmoid=True, coder=True):
        super().__init__()
        self.shared = nn.Linear(3, 3)
        self.loss_cls = _loss(type='CrossEntropyLoss', use_sigmoid=use_sigmoid)
        self.loss_bbox = _loss(type='L1Loss')
        if coder:
            self.bbox_coder = TASK_UTILS.build(dict(
                type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                target_stds=[0.1, 0.1, 0.2, 0.2]))
        self.reg_decoded_bbox = False


class Detector(nn.Module):
    def __init__(self, head=None):
        super().__init__()
        self.neck = nn.Linear(3, 3)
        self.head = head if head is not None else Head()


def _attach(name, det, losses=None, **kw):
    losses = losses or dict(cls='head.loss_cls', reg='head.loss_bbox')
    if name == 'kpi' and 'compact' not in kw:
        return _BothPaths(*(_attach(name, det, losses, compact=c, **kw)
                            for c in (True, False)))
    p = build_signal_provider(dict(type=name, **kw))
    p.attach(det, {t: [det.get_submodule(m)] for t, m in losses.items()})
    p.reset()
    return p


class _BothPaths:
    """A KPI provider that keeps the weighted rows (``compact=True``, the
    CPU default) and its twin that measures in place, masked, without a
    host read (``compact=False``, the GPU default), fed the same calls:
    ``collect()`` asserts that the two give the same values, exactly, and
    returns them (for the hand-worked expectations of each test)."""

    def __init__(self, compact, masked):
        self.compact, self.masked = compact, masked

    def __getattr__(self, name):
        return getattr(self.compact, name)

    def reset(self):
        self.compact.reset()
        self.masked.reset()

    def collect(self):
        got, twin = self.compact.collect(), self.masked.collect()
        assert {t: repr(float(v)) for t, v in got.items()} == \
            {t: repr(float(v)) for t, v in twin.items()}
        return got


def test_kpi_regression_iou_of_deltas():
    det = Detector()
    p = _attach('kpi', det)
    # zero deltas: the anchor; target twice as wide: IoU 1/2 (hand-worked,
    # any anchor); an identical pair: 1; a row with zero weight: not counted
    w2 = math.log(2) / 0.2
    pred = torch.zeros(3, 4)
    target = torch.tensor([[0., 0., w2, 0.], [0.] * 4, [0., 0., w2, 0.]])
    weight = torch.tensor([[1.] * 4, [1.] * 4, [0.] * 4])
    det.head.loss_bbox(pred, target, weight, avg_factor=2)
    assert p.collect()['reg'] == pytest.approx(0.75)
    assert math.isnan(p.collect()['cls'])  # no classification call


def test_kpi_ignores_what_unweighted_rows_hold():
    # a dense head passes every anchor and weighs the positives; the other
    # rows' deltas and scores may be anything (here inf / NaN, as in a
    # diverging step) and must not reach the KPI: the positive's IoU is 1/2
    # (target twice as wide, as above), the sampled scores 1 of 2 correct
    det = Detector()
    p = _attach('kpi', det)
    w2 = math.log(2) / 0.2
    pred = torch.tensor([[0.] * 4, [math.inf, 0., math.nan, 0.]])
    target = torch.tensor([[0., 0., w2, 0.], [math.nan] * 4])
    det.head.loss_bbox(pred, target, torch.tensor([[1.] * 4, [0.] * 4]))
    score = torch.tensor([[2.], [math.nan], [-3.]])
    det.head.loss_cls(score, torch.tensor([0, 0, 0]),
                      torch.tensor([1., 0., 1.]))
    assert p.collect() == pytest.approx(dict(cls=0.5, reg=0.5))


def test_kpi_sampled_and_dense_calls_give_the_same_accuracy():
    # 2 foreground classes, sigmoid: scores predicting (0, 1, bg, 0) for
    # labels (0, 0, 2, 1): rows 0 and 2 correct. A sampler-style call
    # weighs 4 of 40 rows (kept, measured in collect), a dense call all 4:
    # 2 of 4 each time
    det = Detector()
    p = _attach('kpi', det)
    score = torch.tensor([[3., -1.], [-2., 1.], [-1., -1.], [2., -3.]])
    labels = torch.tensor([0, 0, 2, 1])
    sparse = torch.zeros(40, 2)
    sparse[::10] = score
    weights = torch.zeros(40)
    weights[::10] = 1.0
    det.head.loss_cls(sparse, labels.repeat_interleave(10), weights)
    assert p.collect()['cls'] == pytest.approx(0.5)
    p.reset()
    det.head.loss_cls(score, labels, torch.ones(4))
    assert p.collect()['cls'] == pytest.approx(0.5)
    # both kinds of call in one iteration, and a second sampled level:
    # 2 + 2 + 1 (the first row only) correct of 4 + 4 + 1
    p.reset()
    det.head.loss_cls(sparse, labels.repeat_interleave(10), weights)
    det.head.loss_cls(score, labels, torch.ones(4))
    det.head.loss_cls(score, labels, weight=torch.tensor([1., 0, 0, 0]))
    assert p.collect()['cls'] == pytest.approx(5 / 9)


@pytest.mark.parametrize('loss,decoded', [('GIoULoss', False),
                                          ('CIoULoss', False),
                                          ('L1Loss', True)])
def test_kpi_of_decoded_boxes(loss, decoded):
    # IoU-type losses take boxes; so does any loss of a head with
    # reg_decoded_bbox=True (no coder needed): IoUs 1/7 and 1/2 (by hand)
    head = Head(coder=False)
    head.loss_bbox = _loss(type=loss)
    head.reg_decoded_bbox = decoded
    det = Detector(head)
    p = _attach('kpi', det)
    boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.]])
    targets = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 4.]])
    det.head.loss_bbox(boxes, targets, torch.ones(2, 4), avg_factor=2)
    assert p.collect()['reg'] == pytest.approx((1 / 7 + 1 / 2) / 2)


@pytest.mark.parametrize('use_sigmoid', [True, False])
def test_kpi_classification_accuracy(use_sigmoid):
    det = Detector(Head(use_sigmoid))
    p = _attach('kpi', det)
    if use_sigmoid:  # 1 foreground class: label 0 = fg, 1 = bg
        score = torch.tensor([[2.], [-1.], [3.], [-2.], [5.]])
    else:            # softmax over (fg, bg)
        score = torch.tensor([[2., 0.], [0., 1.], [3., 0.], [0., 2.],
                              [5., 0.]])
    labels = torch.tensor([0, 0, 1, 1, 0])
    weights = torch.tensor([1., 1., 1., 1., 0.])  # last one not sampled
    det.head.loss_cls(score, labels, weights)
    det.head.loss_cls(score[:1], labels[:1], weight=weights[:1])  # level 2
    # correct: samples 0, 3 and the second call's sample: 3 of 5
    assert p.collect()['cls'] == pytest.approx(3 / 5)
    balanced = _attach('kpi', det, cls_metric='balanced')
    det.head.loss_cls(score, labels, weights)
    # fg: 1 of 2, bg: 1 of 2
    assert balanced.collect()['cls'] == pytest.approx(0.5)


def _fcos_head():
    head = nn.Module()
    head.loss_cls = _loss(type='FocalLoss', use_sigmoid=True)
    head.loss_bbox = _loss(type='IoULoss')
    head.loss_centerness = _loss(type='CrossEntropyLoss', use_sigmoid=True)
    return head


def test_fcos_style_calls():
    det = Detector(_fcos_head())
    losses = dict(cls='head.loss_cls', reg='head.loss_bbox',
                  ctr='head.loss_centerness')
    kpi, count = _attach('kpi', det, losses), _attach('num_samples', det,
                                                      losses)
    # FCOS: two positional arguments, no weight; 2 classes, bg = 2
    scores = torch.tensor([[3., -3.], [-3., -3.], [-3., 3.]])
    labels = torch.tensor([0, 2, 0])  # correct, correct, wrong
    det.head.loss_cls(scores, labels, avg_factor=2)
    # decoded boxes, weight as a keyword (the centerness targets)
    boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.]])
    targets = torch.tensor([[1., 1., 3., 3.], [0., 0., 2., 4.]])
    ctr_t = torch.tensor([0.5, 0.25])
    det.head.loss_bbox(boxes, targets, weight=ctr_t, avg_factor=0.75)
    # centerness logits 0 and log 3: sigmoid 0.5 and 0.75
    det.head.loss_centerness(torch.tensor([0., math.log(3.)]), ctr_t,
                             avg_factor=2)
    assert kpi.collect() == pytest.approx(
        dict(cls=2 / 3, reg=(1 / 7 + 1 / 2) / 2, ctr=(1.0 + 0.5) / 2))
    assert count.collect() == dict(cls=3.0, reg=2.0, ctr=2.0)


def test_gfl_style_calls():
    head = nn.Module()
    head.loss_cls = _loss(type='QualityFocalLoss', use_sigmoid=True)
    head.loss_dfl = _loss(type='DistributionFocalLoss')
    det = Detector(head)
    losses = dict(cls='head.loss_cls', dfl='head.loss_dfl')
    kpi, count = _attach('kpi', det, losses), _attach('num_samples', det,
                                                      losses)
    scores = torch.tensor([[3., -3.], [-3., -3.], [-3., 3.], [3., -3.]])
    labels = torch.tensor([0, 2, 0, 1])  # correct, correct, wrong, wrong
    quality = torch.tensor([0.9, 0., 0.4, 0.7])
    det.head.loss_cls(scores, (labels, quality),
                      weight=torch.tensor([1., 1., 1., 0.]), avg_factor=3)
    # DFL, reg_max 4: sides (1, 1, 1, 1) vs target (1, 1, 3, 1): IoU 1/2
    logits = torch.full((4, 5), -50.)
    logits[:, 1] = 50.
    target = torch.tensor([1., 1., 3., 1.])
    det.head.loss_dfl(logits, target, weight=torch.full((4, ), 0.9),
                      avg_factor=4.0)
    assert kpi.collect() == pytest.approx(dict(cls=2 / 3, dfl=0.5))
    assert count.collect() == dict(cls=3.0, dfl=1.0)


def test_mask_loss_counts_every_instance_class_0_included():
    head = nn.Module()
    head.loss_mask = _loss(type='CrossEntropyLoss', use_mask=True)
    det = Detector(head)
    losses = dict(mask='head.loss_mask')
    kpi, count = _attach('kpi', det, losses), _attach('num_samples', det,
                                                      losses)
    # five instances, three of class 0; masks 2x2 with 2 classes: channel 0
    # predicts the left column, channel 1 everything; targets: top row
    pred = torch.full((5, 2, 2, 2), -1.)
    pred[:, 0, :, 0] = 1.
    pred[:, 1] = 1.
    target = torch.zeros(5, 2, 2)
    target[:, 0] = 1.
    labels = torch.tensor([0, 0, 0, 1, 1])
    det.head.loss_mask(pred, target, labels)
    # class 0: IoU 1/3 (1 shared pixel of 3), class 1: 2/4
    assert kpi.collect()['mask'] == pytest.approx((3 / 3 + 2 * 0.5) / 5)
    assert count.collect() == dict(mask=5.0)


def test_unreadable_call_fails_loudly_naming_the_module():
    det = Detector()
    _attach('kpi', det)
    with pytest.raises(ValueError, match=r"'head\.loss_cls'.*called with "
                       r"\(\(Tensor\(2, 1\).*needs"):
        det.head.loss_cls([torch.zeros(2, 1)])
    with pytest.raises(ValueError, match=r"head\.loss_bbox.*kinds"):
        det.head.loss_bbox(torch.zeros(2, 3), torch.zeros(2, 3))
    # an override makes the call readable
    q = _attach('kpi', det, kinds=dict(reg='quality'))
    det.head.loss_bbox(torch.zeros(3), torch.full((3, ), 0.5))
    assert q.collect()['reg'] == pytest.approx(1.0)


def test_a_module_that_is_not_a_loss_fails_in_attach():
    det = Detector()
    for signal in ('kpi', 'num_samples'):
        with pytest.raises(ValueError, match=r"'head\.shared' \(Linear\).*"
                           r"not a loss: its forward\(input"):
            _attach(signal, det, dict(cls='head.loss_cls',
                                      reg='head.shared'))


def test_deltas_without_a_coder_fail_in_attach():
    with pytest.raises(ValueError, match=r"head\.loss_bbox.*bbox_coder"):
        _attach('kpi', Detector(Head(coder=False)))
    # the sample counts need no coder
    _attach('num_samples', Detector(Head(coder=False)))


def test_empty_signal_warns_once_naming_it():
    det = Detector()
    p = _attach('num_samples', det, warn_after=3)
    target = 'mmdet_alwa.engine.hooks.signals.base.print_log'
    with mock.patch(target) as log:
        for _ in range(5):  # classification only: reg stays empty
            p.reset()
            det.head.loss_cls(torch.ones(2, 1), torch.zeros(2).long(),
                              torch.ones(2))
            # the hook hands the reduced values to watch() (no device read
            # in collect())
            values = {t: float(v) for t, v in p.collect().items()}
            assert p.watch(values) == dict(cls=2.0, reg=0.0)
    assert log.call_count == 1
    message = log.call_args[0][0]
    assert "'num_samples'" in message and "'reg'" in message
    assert 'head.loss_bbox' in message and '3 iterations' in message


def test_grad_norm_of_each_task_on_the_shared_layer():
    torch.manual_seed(0)
    det = Detector()
    p = _attach('grad_norm', det, shared_layer='head.shared')
    x = torch.randn(4, 3)
    feat = det.head.shared(det.neck(x))
    raw = dict(cls=feat[:, 0].pow(2).sum(), reg=feat[:, 1:].abs().sum())
    p.on_losses(raw, rule=None)
    for task, loss in raw.items():
        grads = torch.autograd.grad(loss, list(det.head.shared.parameters()),
                                    retain_graph=True)
        ref = torch.cat([g.flatten() for g in grads]).norm().item()
        assert p.collect()[task] == pytest.approx(ref, rel=1e-6)
    # default without a known shared head layer: the neck
    assert _attach('grad_norm', det).layer_names == ['neck']


def test_grad_norm_with_respect_to_the_shared_output():
    # Z = shared(neck(x)); cls = sum Z[:, 0]^2 -> dcls/dZ = 2 Z[:, 0] in
    # column 0, norm 2 ||Z[:, 0]||; reg = sum |Z[:, 1:]| -> signs, norm
    # sqrt(4 rows x 2 columns)
    torch.manual_seed(0)
    det = Detector()
    p = _attach('grad_norm', det, shared_layer='head.shared', wrt='output')
    feat = det.head.shared(det.neck(torch.randn(4, 3)))
    with torch.no_grad():  # an evaluation forward: not kept
        det.head.shared(torch.randn(2, 3))
    p.on_losses(dict(cls=feat[:, 0].pow(2).sum(),
                     reg=feat[:, 1:].abs().sum()), rule=None)
    assert p.collect() == pytest.approx(dict(
        cls=2 * feat[:, 0].norm().item(), reg=math.sqrt(8)), rel=1e-6)
    # a ModuleList (FPN's fpn_convs): each layer's output counts; the loss
    # 3 sum(Z_0) + 4 sum(Z_1) of two (1, 1) outputs: norm sqrt(3^2 + 4^2)
    det.neck = nn.ModuleList([nn.Linear(3, 1), nn.Linear(3, 1)])
    q = _attach('grad_norm', det, shared_layer='neck', wrt='output')
    z0, z1 = (layer(torch.randn(1, 3)) for layer in det.neck)
    q.on_losses(dict(cls=3 * z0.sum() + 4 * z1.sum(), reg=z0.sum()),
                rule=None)
    assert q.collect() == pytest.approx(dict(cls=5.0, reg=1.0))
    # the next iteration starts without the old outputs: no forward, 0
    q.reset()
    q.on_losses(dict(cls=z0.sum(), reg=z1.sum()), rule=None)
    assert q.norms == dict(cls=0.0, reg=0.0)
    q.detach()
    det.neck[0](torch.randn(1, 3))
    assert q._outputs == []


def test_grad_norm_skipped_between_the_rules_updates():
    # GradNorm(interval=2): the second iteration updates nothing, so no
    # backward pass is taken, its norms are NaN and no empty-signal count
    from mmdet_alwa.weighting import GradNorm
    det = Detector()
    p = _attach('grad_norm', det, shared_layer='head.shared', warn_after=1)
    rule = GradNorm(interval=2)
    feat = det.head.shared(det.neck(torch.randn(4, 3)))
    raw = dict(cls=feat[:, 0].sum(), reg=feat[:, 1].sum())
    p.on_losses(raw, rule)
    first = p.collect()
    assert all(v > 0 for v in first.values())
    rule.step(dict(cls=1.0, reg=1.0), grad_norm=first)
    p.reset()
    with mock.patch('torch.autograd.grad') as grad:
        p.on_losses(raw, rule)
    grad.assert_not_called()
    with mock.patch('mmdet_alwa.engine.hooks.signals.base.print_log') as log:
        values = p.collect()
        assert all(math.isnan(v) for v in values.values())
        p.watch(values)
    log.assert_not_called()


def test_loss_input_provider_sums_per_call_or_leaves_them_to_the_subclass():
    # the base hook adds each call's sums (as_stats: a float64 vector) over
    # the iteration's calls of a task; a measure() returning None keeps the
    # call for the subclass, which then owns the task's stats
    from mmdet_alwa.engine.hooks.signals.loss_inputs import (
        LossInputProvider, as_stats)

    class Rows(LossInputProvider):
        signal = 'rows'

        def measure(self, kind, name, module, head, call):
            if kind == 'box':
                return None
            return [call.pred.size(0), 1]

        def collect(self):
            return {}

    det = Detector()
    p = Rows()
    p.attach(det, dict(cls=[det.head.loss_cls], reg=[det.head.loss_bbox]))
    p.reset()
    for rows in (3, 5):
        det.head.loss_cls(torch.zeros(rows, 1), torch.zeros(rows).long())
    det.head.loss_bbox(torch.zeros(2, 4), torch.zeros(2, 4))
    assert p.stats['cls'].tolist() == [8.0, 2.0]
    assert p.stats['cls'].dtype == torch.float64
    assert 'reg' not in p.stats and p.kind_of == dict(cls='cls', reg='box')
    assert as_stats([torch.tensor(2), 0.5], torch.device('cpu')).tolist() \
        == [2.0, 0.5]
    p.detach()
    det.head.loss_cls(torch.zeros(1, 1), torch.zeros(1).long())
    assert p.stats['cls'].tolist() == [8.0, 2.0]  # hooks removed


def test_bad_provider_args():
    det = Detector()
    with pytest.raises(ValueError, match='shared_layer'):
        _attach('grad_norm', det, shared_layer='nope')
    with pytest.raises(ValueError, match='shared_layer'):
        build_signal_provider(dict(type='grad_norm', shared_layer=[]))
    with pytest.raises(ValueError, match='cls_metric'):
        build_signal_provider(dict(type='kpi', cls_metric='f1'))
    with pytest.raises(ValueError, match='kinds'):
        build_signal_provider(dict(type='kpi', kinds=dict(cls='boxes')))
    with pytest.raises(ValueError, match='warn_after'):
        build_signal_provider(dict(type='kpi', warn_after=0))
    with pytest.raises(ValueError, match='wrt'):
        build_signal_provider(dict(type='grad_norm', wrt='features'))
    with pytest.raises(ValueError, match='unknown signal provider'):
        build_signal_provider(dict(type='nope'))
    with pytest.raises(ValueError, match='compact'):
        build_signal_provider(dict(type='kpi', compact='yes'))


def test_kpi_compact_option_and_host_reads():
    # 'auto': compact on a CPU, in place (masked) elsewhere
    auto = build_signal_provider(dict(type='kpi'))
    assert auto.compacts(torch.device('cpu'))
    assert not auto.compacts(torch.device('cuda'))
    assert not build_signal_provider(dict(type='kpi', compact=False)) \
        .compacts(torch.device('cpu'))
    # a dense head's sampled cls call and a box call (the first test's
    # inputs: accuracy 2 of 4, IoU (1/2 + 1) / 2): the GPU path reads
    # nothing, neither in the calls nor in collect(); the compact path
    # reads (nonzero, the "mostly counts" test)
    from mmdet_alwa.utils.host_reads import count_host_reads
    w2 = math.log(2) / 0.2
    score = torch.tensor([[3., -1.], [-2., 1.], [-1., -1.], [2., -3.]])
    labels = torch.tensor([0, 0, 2, 1])
    sparse, weights = torch.zeros(40, 2), torch.zeros(40)
    sparse[::10], weights[::10] = score, 1.0
    deltas = torch.zeros(3, 4)
    target = torch.tensor([[0., 0., w2, 0.], [0.] * 4, [0., 0., w2, 0.]])
    box_weight = torch.tensor([[1.] * 4, [1.] * 4, [0.] * 4])
    got = {}
    for compact in (False, True):
        det = Detector()
        p = _attach('kpi', det, compact=compact)
        with count_host_reads() as reads:
            det.head.loss_cls(sparse, labels.repeat_interleave(10), weights)
            det.head.loss_bbox(deltas, target, box_weight, avg_factor=2)
            values = p.collect()
        got[compact] = reads.total
        assert values == pytest.approx(dict(cls=0.5, reg=0.75))
    assert got[False] == 0, 'the masked path reads the device'
    assert got[True] > 0
