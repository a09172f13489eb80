"""LossTaps on hand-made modules: same-iteration weighting replaces the raw
outputs in the loss dict (values and list items) and scales the gradient of
an output held only in a derived form; a module another hook claims is an error."""
import pytest
import torch
from torch import nn

from mmdet_alwa.engine.hooks.loss_weighting import LossTaps
from mmdet_alwa.weighting.guided import GuidedLoss


class _Loss(nn.Module):

    def forward(self, x):
        return x.sum()


class _Detector(nn.Module):
    """Two 'levels' of a cls loss in a list (as dense heads), the first
    returned scaled by 0.5 (derived, as Cascade's stage weights)."""

    def __init__(self):
        super().__init__()
        self.loss_cls, self.loss_reg = _Loss(), _Loss()

    def forward(self, a, b, c):
        return dict(loss_cls=[0.5 * self.loss_cls(a), self.loss_cls(b)],
                    loss_reg=self.loss_reg(c))


def test_same_iteration_weights_in_the_loss_dict():
    model = _Detector()
    rule = GuidedLoss()
    taps = LossTaps('g', rule, dict(cls=['loss_cls'], reg=['loss_reg']))

    def on_losses(module, args, output):  # what the hook does
        if not taps.active:
            return
        raw = taps.raw_totals()
        rule.prepare({t: v.item() for t, v in raw.items()})
        taps.weight_in_dict(output)

    taps.attach(model)
    model.register_forward_hook(on_losses)
    a, b, c = (torch.tensor([v], requires_grad=True) for v in (1., 3., 6.))
    taps.start()
    out = model(a, b, c)
    # raw: cls 1 + 3 = 4, reg 6: the ratio of this iteration is 1.5
    assert rule.weights['cls'] == 1.5
    # the derived level keeps its value, the other is replaced
    assert [v.item() for v in out['loss_cls']] == [0.5, 4.5]
    assert out['loss_reg'].item() == 6.0
    sum(out['loss_cls'], out['loss_reg']).backward()
    # the derived level gets the weight through its gradient: 0.5 x 1.5
    assert (a.grad.item(), b.grad.item(), c.grad.item()) == (0.75, 1.5, 1.0)
    raw = taps.stop()
    assert {t: v.item() for t, v in raw.items()} == dict(cls=4.0, reg=6.0)
    # outside a training iteration: nothing is weighted
    out = model(a, b, c)
    assert [v.item() for v in out['loss_cls']] == [0.5, 3.0]
    taps.detach()


def test_a_module_claimed_by_another_hook_is_an_error():
    model = _Detector()
    first = LossTaps('a', GuidedLoss(), dict(cls=['loss_cls'],
                                              reg=['loss_reg']))
    first.attach(model)
    claimed = {m: 'a' for ms in first.modules.values() for m in ms}
    second = LossTaps('b', GuidedLoss(), dict(cls=['loss_cls'],
                                               reg=['loss_reg']))
    with pytest.raises(ValueError, match=r"'loss_cls' is already weighted "
                       r'by LossWeightingHook\(a\)'):
        second.attach(model, claimed)
    first.detach()  # released: nothing is claimed any more
    assert first.modules == {}
    second.attach(model)
    second.detach()
