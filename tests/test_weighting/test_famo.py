"""FAMO (Liu et al., NeurIPS'23) with the next-iteration losses: the
weights w_k = (z_k / L_k) / sum_j z_j / L_j worked by hand, the logits
checked against the paper's update written out here (softmax Jacobian and
Adam with L2 weight decay, Kingma & Ba's Algorithm 1), the gradient
against TorchJD's FAMO back-propagated directly, and an exact resume."""
import copy
import math

import pytest
import torch
from torchjd.scalarization import FAMO as TorchJDFAMO

from _two_heads import weighted_vs_scalarized
from mmdet_alwa.weighting import FAMO, build_rule

EPS = 1e-8  # FAMO's epsilon inside the logs


def paper_stream(losses, lr=0.025, weight_decay=1e-3):
    """The weights of every iteration, FAMO's loop with the logits updated
    after iteration t from log L(t-1) - log L(t), in plain python."""
    k = len(losses[0])
    xi, m, v, step = [0.0] * k, [0.0] * k, [0.0] * k, 0
    out = []
    for t, loss in enumerate(losses):
        if t >= 2:  # the update of iteration t-1: (L(t-2), L(t-1))
            delta = [math.log(a + EPS) - math.log(b + EPS)
                     for a, b in zip(losses[t - 2], losses[t - 1])]
            e = [math.exp(x) for x in xi]
            z = [x / sum(e) for x in e]
            zd = sum(zi * di for zi, di in zip(z, delta))
            grad = [zi * (di - zd) for zi, di in zip(z, delta)]
            step += 1
            for i in range(k):
                g = grad[i] + weight_decay * xi[i]
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                mh, vh = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
                xi[i] -= lr * mh / (math.sqrt(vh) + 1e-8)
        e = [math.exp(x) for x in xi]
        z = [x / sum(e) for x in e]
        inv = [zi / (li + EPS) for zi, li in zip(z, loss)]
        out.append([x / sum(inv) for x in inv])
    return out


STREAM = [(1.0, 3.0), (0.9, 2.9), (0.8, 2.0), (0.7, 1.9), (0.75, 1.2),
          (0.5, 1.1), (0.45, 1.0), (0.4, 0.6), (0.38, 0.55), (0.3, 0.5)]


def run(rule, losses, start=0):
    got = []
    for cls, reg in losses[start:]:
        got.append(list(rule.prepare(dict(cls=cls, reg=reg)).values()))
        rule.step(dict(cls=cls, reg=reg))
    return got


def test_first_weights_by_hand():
    # z = (1/2, 1/2): w = (1/1, 1/3) / (4/3) = (3/4, 1/4) (up to EPS)
    w = FAMO().prepare(dict(cls=1.0, reg=3.0))
    assert w == pytest.approx(dict(cls=0.75, reg=0.25), rel=1e-7)


def test_logits_follow_the_paper_update():
    rule = FAMO()
    got = run(rule, STREAM)
    expected = paper_stream(STREAM)
    for a, b in zip(got, expected):
        assert a == pytest.approx(b, rel=1e-9)
    # the first update: Adam's first step is lr * sign(grad); the task whose
    # log-loss fell more (cls: log(1/0.9) > log(3/2.9)) loses weight
    assert rule.num_updates == len(STREAM) - 2  # the last one is pending


def test_gradient_equals_torchjd_famo():
    rule = FAMO()
    run(rule, STREAM[:5])  # trained logits (an update pending)
    direct = TorchJDFAMO(2).double()

    def scalarize(losses):  # called after rule.prepare: its logits now
        with torch.no_grad():
            next(direct.parameters()).copy_(rule.logits)
        return direct(losses)

    ours, theirs = weighted_vs_scalarized(rule, scalarize)
    assert rule.num_updates == 4
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize('cut', [1, 2, 4, 7])
def test_resume_is_identical(cut):
    """The state (logits, Adam's moments and step, the losses of the
    pending update) through a deep copy, as a checkpoint would hold it."""
    full = run(FAMO(), STREAM)
    part = FAMO()
    run(part, STREAM[:cut])
    state = copy.deepcopy(part.state_dict())
    assert isinstance(state['logits'], list)
    resumed = build_rule(dict(type='FAMO'))
    resumed.load_state_dict(state)
    assert run(resumed, STREAM, start=cut) == full[cut:]
    assert resumed.state_dict() == FAMO_state_after(STREAM)


def FAMO_state_after(losses):
    rule = FAMO()
    run(rule, losses)
    return rule.state_dict()


def test_glue_reads_logits_and_adam_state_with_the_weights():
    """device_state: the applied weights, the fallback flag, the logits and
    Adam's (exp_avg, exp_avg_sq; its step is num_updates); handed back as
    numbers, the logs and the state need no further read."""
    rule = FAMO()
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    for i, (cls, reg) in enumerate(STREAM[:4]):
        rule.prepare(dict(cls=t(cls), reg=t(reg)))
        tensors = rule.device_state()
        assert len(tensors) == (3 if i < 2 else 5)
        rule.set_device_values(
            torch.cat([x.reshape(-1).double() for x in tensors]).tolist())
        rule.step(dict(cls=cls, reg=reg))
    scalars = rule.log_scalars()
    logit = float(rule.logits.detach()[0])
    assert scalars['logit_cls'] == pytest.approx(logit)
    assert scalars['num_updates'] == 2.0
    assert rule.state_dict()['adam']['step'] == 2.0


def test_nonfinite_loss_skips_two_updates_and_falls_back():
    rule = FAMO()
    stream = list(STREAM[:3]) + [(math.nan, 1.0)] + list(STREAM[3:6])
    got = run(rule, stream)
    assert got[3] == got[2]  # the previous weights
    assert rule.num_fallbacks == 1 and rule.num_nonfinite['cls'] == 1
    # updates: (0,1) (1,2); none with the NaN iteration; then (4,5) pending
    # after 5 and applied at 6
    assert rule.num_updates == 3
    assert all(math.isfinite(w) for ws in got for w in ws)


def test_zero_loss_is_finite():
    w = FAMO().prepare(dict(cls=0.0, reg=1.0))
    assert w['cls'] == pytest.approx(1.0) and w['reg'] < 1e-7


@pytest.mark.parametrize('kw', [dict(lr=0), dict(weight_decay=-1),
                                dict(min_losses=(0.0, )), dict(scale=0)])
def test_bad_args(kw):
    with pytest.raises(ValueError):
        FAMO(**kw)
