"""Every balancer on every mmdet detector family, through mmengine's Runner.

Detectors: mmdet 3.3.0's own configs (``tests/_detectors.py``), shrunk.
Rules: ALWA (RPN or dense pair) and Guided Loss (RoI or dense pair) on a
cls/reg pair -- on one runner for two-stage detectors, whose pairs are
disjoint -- and DWA, DTP, uncertainty, GradNorm, TDB and the loss-only
rules over TorchJD (FAMO, RLW, GLS, IMTL-L, STCH) on all of the detector's
losses (5 tasks for Mask R-CNN, 3 for ATSS/FCOS/GFL); on Mask
R-CNN also GradNorm with the norms at the shared layer's output.

Each (detector, run) trains 3 iterations under a LinearLR warm-up,
checkpointing at 2, then resumes from that checkpoint, and shows:

- the back-propagated loss is weight x raw for every task and call:
  d(total loss)/d(raw output of the loss module) is the weight the rule
  reports for that iteration (times Cascade R-CNN's stage loss weight);
- every signal the rule reads is there: KPIs in [0, 1], sample counts and
  gradient norms > 0 (every generated image has objects);
- the weights move as the rule's equation, worked from the logged raw
  losses and signals in this file (not by calling the rule), says;
- the resumed iteration has the uninterrupted run's weights, raw losses
  and final rule state.

One test per (detector, run) so that ``pytest -n`` never runs one twice.
"""
import math
import os.path as osp
from typing import Dict, List
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torchjd import aggregation as torchjd_aggregation
from torchjd.autojac import jac

from _detectors import DETECTORS, detector_cfg
from mmdet.registry import MODELS
from mmdet_alwa.engine.hooks import LossWeightingHook
from mmdet_alwa.engine.hooks.signals import build_signal_provider
from mmdet_alwa.utils import safe_checkpoint_loading

ITERS, RESUME_AT = 3, 2
#: {detector: {task: weights per box}} of losses a head divides by the sum
#: of the weights of its calls after the loss module (``_head_factors``)
POST_SCALED = dict(atss=dict(reg=1), gfl=dict(reg=1, dfl=4),
                   rtmdet=dict(reg=1))
ALL_LOSS_RULES = {
    'dwa': dict(type='DWA', interval=1),
    'dtp': dict(type='DTP'),
    'uncertainty': dict(type='UncertaintyWeighting'),
    'gradnorm': dict(type='GradNorm'),
    'tdb': dict(type='TDB'),
    # the loss-only rules over TorchJD's scalarizers
    'famo': dict(type='FAMO'),
    'rlw': dict(type='RLW', seed=3),
    'gls': dict(type='GLS'),
    'imtl_l': dict(type='IMTL_L'),
    'stch': dict(type='STCH', mu=0.5),
    # gradient aggregation at the neck's outputs (TorchJD's weightings)
    'upgrad': dict(type='UPGrad'),
    'mgda': dict(type='MGDA'),
    'pcgrad': dict(type='PCGrad', seed=5),
    'imtl_g': dict(type='IMTL_G'),
    'aligned_mtl': dict(type='AlignedMTL'),
    'dualproj': dict(type='DualProj'),
    'cagrad': dict(type='CAGrad'),
}
#: TorchJD's Aggregator of each gradient-aggregation rule: the oracle
AGGREGATORS = dict(
    UPGrad=lambda rule: torchjd_aggregation.UPGrad(),
    MGDA=lambda rule: torchjd_aggregation.MGDA(),
    PCGrad=lambda rule: torchjd_aggregation.PCGrad(),
    IMTL_G=lambda rule: torchjd_aggregation.IMTLG(),
    AlignedMTL=lambda rule: torchjd_aggregation.AlignedMTL(),
    DualProj=lambda rule: torchjd_aggregation.DualProj(),
    CAGrad=lambda rule: torchjd_aggregation.CAGrad(c=rule.c))


def _runs(name):
    det = DETECTORS[name]
    if len(det.pairs) == 2:  # ALWA on the RPN, Guided on the RoI head
        yield 'alwa+guided'
    else:
        yield 'alwa'
        yield 'guided'
    yield from ALL_LOSS_RULES
    if name == 'mask_rcnn':  # 5 tasks of 3 heads: the option's use case
        yield 'gradnorm_output'


KNOWN_BUGS = {}  # (name, run) -> reason: strict xfail until fixed
CASES = [pytest.param(name, run, id=f'{name}-{run}', marks=(
    [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name, run])]
    if (name, run) in KNOWN_BUGS else []))
    for name in DETECTORS for run in _runs(name)]


def _hooks(name, run) -> Dict[str, dict]:
    det = DETECTORS[name]
    losses = det.losses

    def pair_hook(kind, pair):
        rule = dict(type='ALWA', variant=1, interval=2) if kind == 'alwa' \
            else dict(type='GuidedLoss', tasks=pair,
                      mode='rpn' if len(det.pairs) == 2 else 'one_stage',
                      warmup=2)
        sub = {t: losses[t] for t in pair}
        if kind == 'alwa':
            sub = dict(cls=sub[pair[0]], reg=sub[pair[1]])
        return dict(type='LossWeightingHook', name=kind, rule=rule,
                    losses=sub)

    if run == 'alwa+guided':
        return dict(alwa=pair_hook('alwa', det.pairs[0]),
                    guided=pair_hook('guided', det.pairs[1]))
    if run in ('alwa', 'guided'):
        return {run: pair_hook(run, det.pairs[0])}
    if run == 'gradnorm_output':  # the norms at the FPN convs' outputs
        return {run: dict(
            type='LossWeightingHook', name=run,
            rule=dict(type='GradNorm', tasks=list(losses)), losses=losses,
            signals=dict(grad_norm=dict(type='grad_norm', wrt='output')))}
    rule = dict(ALL_LOSS_RULES[run], tasks=list(losses))
    return {run: dict(type='LossWeightingHook', name=run, rule=rule,
                      losses=losses)}


@pytest.fixture(autouse=True, scope='module')
def _cheap_pretty_text():
    """mmengine formats the config with yapf six times a run (~0.75 s each
    at this size: the matrix's largest cost); nothing here reads it."""
    original = Config.pretty_text
    Config.pretty_text = property(lambda self: f'# {self.filename}')
    yield
    Config.pretty_text = original


class _Recorder(Hook):
    """Per iteration and weighting hook: the weights in use (read after the
    detector's loss forward, before backward: Guided's same-iteration ratio
    is set by then, uncertainty's log-variances not yet stepped), what
    ``rule.step`` receives, the weights after it; and per loss call the
    gradient of the total loss with respect to its raw output."""

    priority = 'LOWEST'

    def __init__(self, runner, detector):
        self.detector = detector
        self.hooks = [h for h in runner.hooks
                      if isinstance(h, LossWeightingHook)]
        self.used: Dict[str, List[dict]] = {h.name: [] for h in self.hooks}
        self.steps: Dict[str, List[dict]] = {h.name: [] for h in self.hooks}
        self.grads: Dict[str, Dict[int, list]] = {}
        # gradient aggregation: per iteration, J^T w and TorchJD's
        # Aggregator of the Jacobian at the neck's outputs
        self.directions: Dict[str, List[tuple]] = {
            h.name: [] for h in self.hooks}
        self.neck_outputs: List[torch.Tensor] = []
        # the raw loss outputs of this iteration, as the probes see them
        # (before the weighting hook's tap): {'<hook>/<task>': [tensor]}
        self.raw_outputs: Dict[str, List[torch.Tensor]] = {}
        model = runner.model
        if any(getattr(h.rule, 'needs_gramian', False) for h in self.hooks):
            model.neck.register_forward_hook(self._keep_neck)
        # registered before the weighting hooks' (in their before_run): runs
        # first, so it sees the raw output
        for hook in self.hooks:
            for task, paths in hook.loss_paths.items():
                for path in paths:
                    self._probe(runner, model.get_submodule(path), hook.name,
                                task, path)

    def _probe(self, runner, module, name, task, path):
        store = self.grads.setdefault(f'{name}/{task}', {})

        def forward_hook(mod, args, kwargs, out):
            if mod.training and out.requires_grad:
                self.raw_outputs.setdefault(f'{name}/{task}', []).append(out)
                calls = store.setdefault(runner.iter, [])
                index = len(calls)
                weight = kwargs.get('weight', args[2] if len(args) > 2
                                    else None)
                calls.append(None)

                def grad_hook(g):
                    # the last gradient is the main backward's (GradNorm's
                    # autograd.grad of the raw loss passes here first)
                    calls[index] = (path, g.sum().item() / max(g.numel(), 1),
                                    0.0 if weight is None
                                    else weight.sum().item())

                out.register_hook(grad_hook)

        module.register_forward_hook(forward_hook, with_kwargs=True)

    def before_train(self, runner):
        runner.model.register_forward_hook(self._after_forward)
        for hook in self.hooks:
            self._spy(hook)

    def _keep_neck(self, module, args, out):
        if module.training:
            self.neck_outputs = [o for o in out if o.requires_grad]

    def _after_forward(self, module, args, out):
        if module.training and isinstance(out, dict):
            for hook in self.hooks:
                self.used[hook.name].append(dict(hook.rule.weights))
                if getattr(hook.rule, 'needs_gramian', False):
                    self._aggregate(hook)
            self.raw_outputs = {}

    def _aggregate(self, hook):
        # TorchJD's autojac Jacobian of the raw losses at the neck's outputs
        # and its Aggregator, vs J^T w with the weights the hook applied
        rule = hook.rule
        losses = torch.stack([
            sum(o.sum() for o in self.raw_outputs[f'{hook.name}/{t}'])
            for t in rule.tasks])
        # one task at a time (no vmap: the probes read their gradients)
        jacs = jac(losses, self.neck_outputs, retain_graph=True,
                   parallel_chunk_size=1)
        matrix = torch.cat([j.reshape(len(rule.tasks), -1) for j in jacs],
                           dim=1).double()
        with torch.random.fork_rng(devices=[]):  # PCGrad's draw
            torch.manual_seed(_splitmix64(
                (getattr(rule, 'seed', 0) << 32) + rule.num_steps) >> 1)
            # at unit Frobenius norm: TorchJD treats a Jacobian whose
            # squared norm is under 1e-4 as zero (the methods are positively
            # homogeneous, so this is the same update)
            fro = matrix.norm()
            expected = AGGREGATORS[type(rule).__name__](rule)(
                matrix / fro) * fro
        w = torch.tensor([self.used[hook.name][-1][t] for t in rule.tasks],
                         dtype=torch.float64)
        self.directions[hook.name].append(
            (w @ matrix, expected, matrix.norm(dim=1).max().item()))

    def _spy(self, hook):
        rule, step, log = hook.rule, hook.rule.step, self.steps[hook.name]

        def spy(raw, **signals):
            step(raw, **signals)
            log.append(dict(raw=dict(raw), signals={
                k: dict(v) for k, v in signals.items()},
                after=dict(rule.weights)))

        rule.step = spy


class _SeedEachIter(Hook):
    """mmengine does not checkpoint the RNGs, and R-CNN samplers draw from
    torch's (Libra R-CNN's IoU-balanced sampler from numpy's): seeding every
    iteration lets a resumed run sample as the first."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        torch.manual_seed(runner.iter)
        np.random.seed(runner.iter)


def _train(name, run, work_dir, data, resume_from=None):
    cfg = detector_cfg(name, str(work_dir), data, ITERS, _hooks(name, run),
                       checkpoint_interval=RESUME_AT)
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    runner = Runner.from_cfg(cfg)
    recorder = _Recorder(runner, name)
    runner.register_hook(recorder)
    runner.register_hook(_SeedEachIter())
    with safe_checkpoint_loading():  # as tools/train.py --resume
        runner.train()
    return runner, recorder


def _head_factors(runner, name, task, calls):
    """What the detector multiplies a loss module's output by before it
    enters the total loss, per call (from mmdet's sources): Cascade R-CNN's
    stage loss weights; ATSS, GFL and RTMDet divide their box (and DFL)
    losses by the iteration's sum of the calls' weights (DFL's weights
    repeat each box's 4 times), clamped at 1."""
    if task in POST_SCALED.get(name, {}):
        total = sum(w for _, _, w in calls) / POST_SCALED[name][task]
        return [1 / max(total, 1.0)] * len(calls)
    stages = runner.cfg.model.get('roi_head', {}).get('stage_loss_weights')
    return [stages[int(path.split('.')[2])]
            if stages and path.startswith('roi_head.bbox_head.') else 1.0
            for path, _, _ in calls]


# ---------------------------------------------------------------- checks
def _check_weight_times_raw(runner, rec):
    for hook in rec.hooks:
        used = rec.used[hook.name]
        assert len(used) == ITERS
        for task in hook.rule.tasks:
            calls = rec.grads[f'{hook.name}/{task}']
            assert calls, f'{hook.name}/{task}: its loss was never called'
            for it, grads in calls.items():
                factors = _head_factors(runner, rec.detector, task, grads)
                for (path, grad, _), factor in zip(grads, factors):
                    expected = used[it][task] * factor
                    assert grad == pytest.approx(expected, rel=1e-4,
                                                 abs=1e-12), (
                        f'{hook.name}: d loss / d {path} at iter {it + 1}')


def _check_signals(hook, steps):
    for it, step in enumerate(steps, 1):
        for signal in hook.rule.required_signals:
            for task, value in step['signals'][signal].items():
                where = f'{hook.name}: {signal}[{task}] at iter {it}'
                assert math.isfinite(value), where
                if signal == 'kpi':
                    assert 0 <= value <= 1, where
                else:
                    assert value > 0, where


def _alwa_oracle(hook, steps, used):
    # after step 2 (interval 2): cls = mean + std(ddof=1) of the window's
    # weighted losses (weights 1 until then), likewise reg; cls > reg
    # gives alpha = reg / cls
    def stat(task):
        a, b = (s['raw'][task] for s in steps[:2])
        return (a + b) / 2 + abs(a - b) / math.sqrt(2)

    cls, reg = stat('cls'), stat('reg')
    alpha = reg / cls if cls > reg else 1.0
    assert used[0] == used[1] == dict(cls=1.0, reg=1.0)
    assert used[2] == pytest.approx(dict(cls=alpha, reg=1.0))


def _guided_oracle(hook, steps, used):
    cls_t, reg_t = hook.rule.tasks
    ratios = [s['raw'][reg_t] / s['raw'][cls_t] for s in steps]
    if hook.rule.mode == 'rpn':  # the same iteration's ratio
        expected = ratios
    else:  # warm-up 2, then the mean of the warm-up ratios
        expected = ratios[:2] + [sum(ratios[:2]) / 2]
    for it in range(ITERS):
        assert used[it] == pytest.approx({cls_t: expected[it], reg_t: 1.0})


def _dwa_oracle(hook, steps, used):
    # windows of 1 iteration: w = 1 for two windows, then
    # w_i(3) = K exp(r_i / 2) / sum_j exp(r_j / 2), r_i = L_i(2) / L_i(1)
    tasks = hook.rule.tasks
    assert used[0] == used[1] == {t: 1.0 for t in tasks}
    r = {t: steps[1]['raw'][t] / steps[0]['raw'][t] for t in tasks}
    z = sum(math.exp(v / 2) for v in r.values())
    assert used[2] == pytest.approx(
        {t: len(tasks) * math.exp(r[t] / 2) / z for t in tasks}, rel=1e-6)


def _dtp_oracle(hook, steps, used):
    # kbar = first KPI, then 0.9 kbar + 0.1 kpi; w = -(1 - kbar) log kbar
    kbar = {}
    for it, step in enumerate(steps):
        for task, kpi in step['signals']['kpi'].items():
            kbar[task] = kpi if task not in kbar else \
                0.9 * kbar[task] + 0.1 * kpi
        if it + 1 < ITERS:
            k = {t: min(max(v, 1e-4), 1 - 1e-4) for t, v in kbar.items()}
            assert used[it + 1] == pytest.approx(
                {t: -(1 - v) * math.log(v) for t, v in k.items()})


def _uncertainty_oracle(hook, steps, used):
    # L = sum_i exp(-s_i) L_i / 2 + s_i / 2 from s = 0: dL/ds_i =
    # (1 - L_i) / 2; the first descent step raises s_i iff L_i > 1, i.e.
    # w_i = exp(-s_i) / 2 falls below 1/2 iff L_i > 1
    checked = 0
    for task in hook.rule.tasks:
        raw = steps[0]['raw'][task]
        assert used[0][task] == 0.5
        if abs(raw - 1) > 0.05:  # clear of weight decay and rounding
            checked += 1
            assert (used[1][task] < 0.5) == (raw > 1), task
    assert checked


def _gradnorm_oracle(hook, steps, used):
    # dL_grad/dw_i = p_i sign(G_i - Gbar r_i^a) g_i, G_i = w_i g_i; a task
    # below its target gains weight relative to one above its target
    alpha = hook.rule.alpha
    tasks = hook.rule.tasks
    first = {}
    checked = 0
    for it, step in enumerate(steps):
        raw, g = step['raw'], step['signals']['grad_norm']
        for t in tasks:
            if t not in first and raw[t] > 0:
                first[t] = raw[t]
        if it + 1 >= ITERS:
            break
        before, after = used[it], used[it + 1]
        rel = {t: raw[t] / first[t] for t in tasks}
        r = {t: rel[t] / (sum(rel.values()) / len(tasks)) for t in tasks}
        G = {t: before[t] * g[t] for t in tasks}
        gbar = sum(G.values()) / len(tasks)
        side = {t: math.copysign(1, G[t] - gbar * r[t]**alpha)
                for t in tasks}
        for i in tasks:
            for j in tasks:
                if side[i] < side[j]:  # i below its target, j above
                    checked += 1
                    assert after[i] / after[j] > before[i] / before[j], (
                        f'iter {it + 1}: {i} vs {j}')
    assert checked


def _gls_oracle(hook, steps, used):
    # the same iteration's losses: w_k = S / (K L_k), S their geometric mean
    for it, step in enumerate(steps):
        raw = step['raw']
        k = len(raw)
        s = math.exp(sum(math.log(v) for v in raw.values()) / k)
        assert used[it] == pytest.approx({t: s / (k * v)
                                          for t, v in raw.items()}, rel=1e-6)


def _stch_oracle(hook, steps, used):
    # w_k = lambda softmax_k(lambda L / mu), lambda = 1 / K
    mu = hook.rule.mu
    for it, step in enumerate(steps):
        raw = step['raw']
        lam = 1 / len(raw)
        top = max(raw.values())
        e = {t: math.exp(lam * (v - top) / mu) for t, v in raw.items()}
        z = sum(e.values())
        assert used[it] == pytest.approx({t: lam * v / z
                                          for t, v in e.items()}, rel=1e-6)


def _splitmix64(x):
    # Steele, Lea, Flood, OOPSLA 2014 (java.util.SplittableRandom)
    m = 2**64
    x = (x + 0x9E3779B97F4A7C15) % m
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % m
    return x ^ (x >> 31)


def _rlw_oracle(hook, steps, used):
    # iteration t: softmax of K standard normals, CPU generator seeded by
    # SplitMix64(seed * 2^32 + t) / 2 (Lin et al.'s Algorithm 2)
    tasks = hook.rule.tasks
    for it in range(len(steps)):
        g = torch.Generator().manual_seed(
            _splitmix64((hook.rule.seed << 32) + it) >> 1)
        w = torch.softmax(torch.randn(len(tasks), generator=g,
                                      dtype=torch.float64), 0).tolist()
        assert used[it] == pytest.approx(dict(zip(tasks, w)), rel=1e-9)


def _famo_oracle(hook, steps, used):
    # w_k = (z_k / L_k) / sum_j z_j / L_j; z uniform until the first update
    # (losses of iterations 1 and 2, applied at 3): Adam's first step from
    # xi = 0 is -lr g / (|g| + 1e-8), g = z (delta - z.delta), delta =
    # log L(1) - log L(2)
    eps, tasks = 1e-8, hook.rule.tasks
    raw = [s['raw'] for s in steps]

    def weights(z, loss):
        inv = {t: z[t] / (loss[t] + eps) for t in tasks}
        return {t: v / sum(inv.values()) for t, v in inv.items()}

    z = {t: 1 / len(tasks) for t in tasks}
    assert used[0] == pytest.approx(weights(z, raw[0]), rel=1e-9)
    assert used[1] == pytest.approx(weights(z, raw[1]), rel=1e-9)
    delta = {t: math.log(raw[0][t] + eps) - math.log(raw[1][t] + eps)
             for t in tasks}
    zd = sum(z[t] * delta[t] for t in tasks)
    g = {t: z[t] * (delta[t] - zd) for t in tasks}
    xi = {t: -hook.rule.lr * g[t] / (abs(g[t]) + 1e-8) for t in tasks}
    e = {t: math.exp(v) for t, v in xi.items()}
    z = {t: v / sum(e.values()) for t, v in e.items()}
    assert used[2] == pytest.approx(weights(z, raw[2]), rel=1e-6)


def _imtl_l_oracle(hook, steps, used):
    # S = sum_k e^{s_k} L_k - s_k from s = 0: dS/ds_k = L_k - 1; the first
    # descent step lowers s_k (w_k = e^{s_k} below 1) iff L_k > 1
    checked = 0
    for task in hook.rule.tasks:
        raw = steps[0]['raw'][task]
        assert used[0][task] == 1.0
        if abs(raw - 1) > 0.05:  # clear of weight decay and rounding
            checked += 1
            assert (used[1][task] < 1.0) == (raw > 1), task
    assert checked


ORACLES = dict(ALWA=_alwa_oracle, GuidedLoss=_guided_oracle,
               DWA=_dwa_oracle, DTP=_dtp_oracle,
               UncertaintyWeighting=_uncertainty_oracle,
               GradNorm=_gradnorm_oracle, TDB=_gradnorm_oracle,
               GLS=_gls_oracle, STCH=_stch_oracle, RLW=_rlw_oracle,
               FAMO=_famo_oracle, IMTL_L=_imtl_l_oracle)


def _gramian_oracle(hook, steps, used, directions):
    # the update at the neck's outputs is TorchJD's Aggregator of the
    # Jacobian there (a different code path: autojac, the Aggregator's own
    # Gramian), to 1e-5 of the largest task gradient (MGDA's min-norm
    # point is 0 when a task's gradient is)
    assert len(directions) == ITERS
    for it, (ours, expected, scale) in enumerate(directions, 1):
        assert scale > 0
        err = (ours - expected).norm().item()
        assert err <= 1e-5 * scale, (
            f'iter {it}: |J^T w - TorchJD| = {err:.3g}, '
            f'|g|max = {scale:.3g}')
    k = len(hook.rule.tasks)
    assert len(hook.rule.last_stats) == k + k * (k - 1) // 2


def _check_resume(full, resumed):
    for hook in full.hooks:
        a, b = full.steps[hook.name], resumed.steps[hook.name]
        assert len(b) == ITERS - RESUME_AT
        # the weights in use right after the resume come from the restored
        # state alone: exact
        for x, y in zip(full.used[hook.name][RESUME_AT:],
                        resumed.used[hook.name]):
            assert y == pytest.approx(x, rel=1e-9)
        # the resumed iterations recompute the model: equal up to float
        # rounding; DTP's classification accuracy is an argmax over the
        # nearly tied logits of an untrained head, where that rounding can
        # flip a sample (1/128 of an RoI batch: a 1e-3 change of a weight)
        tol = 1e-2 if type(hook.rule).__name__ == 'DTP' else 1e-5
        for x, y in zip(a[RESUME_AT:], b):
            assert y['raw'] == pytest.approx(x['raw'], rel=1e-5)
            assert y['after'] == pytest.approx(x['after'], rel=tol)
        other = next(h for h in resumed.hooks if h.name == hook.name)
        assert other.rule.num_steps == hook.rule.num_steps == ITERS


@pytest.mark.parametrize('name,run', CASES)
def test_rule_on_detector(name, run, tmp_path, tiny_data):
    runner, rec = _train(name, run, tmp_path / 'full', tiny_data)
    _check_weight_times_raw(runner, rec)
    for hook in rec.hooks:
        steps, used = rec.steps[hook.name], rec.used[hook.name]
        assert len(steps) == ITERS
        _check_signals(hook, steps)
        if getattr(hook.rule, 'needs_gramian', False):
            _gramian_oracle(hook, steps, used, rec.directions[hook.name])
        else:
            ORACLES[type(hook.rule).__name__](hook, steps, used)
    ckpt = osp.join(runner.work_dir, f'iter_{RESUME_AT}.pth')
    _, resumed = _train(name, run, tmp_path / 'resumed', tiny_data,
                        resume_from=ckpt)
    _check_resume(rec, resumed)


def test_unreadable_signal_fails_before_training(tmp_path, tiny_data):
    """A loss module a rule cannot read its signals from stops the run in
    ``before_run``, naming it (here a layer named as if it were a loss)."""
    losses = dict(cls='roi_head.bbox_head.loss_cls',
                  reg='roi_head.bbox_head.fc_reg')
    hooks = dict(dtp=dict(type='LossWeightingHook', name='dtp',
                          rule=dict(type='DTP'), losses=losses))
    runner = Runner.from_cfg(detector_cfg('faster_rcnn', str(tmp_path),
                                          tiny_data, 1, hooks))
    with pytest.raises(ValueError, match=r"'roi_head\.bbox_head\.fc_reg' "
                       r"\(Linear\) of task 'reg' is not a loss"):
        runner.train()
    assert runner.iter == 0


def test_empty_signal_warns_once_naming_it(tmp_path, tiny_data):
    """GradNorm's W set to a layer of the RoI head: the RPN losses never
    reach it, their gradient norms stay 0, and after ``warn_after``
    iterations each warns once, naming the signal, task and modules."""
    det = DETECTORS['faster_rcnn']
    hooks = dict(gradnorm=dict(
        type='LossWeightingHook', name='gradnorm',
        rule=dict(type='GradNorm', tasks=list(det.losses)),
        losses=det.losses,
        signals=dict(grad_norm=dict(
            type='grad_norm', warn_after=2,
            shared_layer='roi_head.bbox_head.shared_fcs.1'))))
    runner = Runner.from_cfg(detector_cfg('faster_rcnn', str(tmp_path),
                                          tiny_data, ITERS, hooks))
    with mock.patch('mmdet_alwa.engine.hooks.signals.base.print_log') as log:
        runner.train()
    messages = [c.args[0] for c in log.call_args_list]
    assert len(messages) == 2, messages
    for task, module in (('rpn_cls', 'rpn_head.loss_cls'),
                         ('rpn_reg', 'rpn_head.loss_bbox')):
        assert any(f"'grad_norm' of task '{task}'" in m and module in m
                   and '2 iterations' in m for m in messages), task


# GradNorm's/TDB's default W per family, by architecture: the RPN's
# rpn_conv feeds both RPN losses; a Shared2FC box head's last shared fc both
# RoI losses; nothing inside a head is shared by Cascade's three stages or by
# Double-Head's fc (cls) and conv (reg) branches, nor by the dense heads'
# separate cls/reg towers, nor by losses of several heads: the neck's
# output convs then (RTMDet's PAFPN: out_convs; Libra R-CNN: its BFP, the
# last of its two necks)
SHARED_LAYERS = {
    'faster_rcnn': ('neck.fpn_convs', 'rpn_head.rpn_conv',
                    'roi_head.bbox_head.shared_fcs.1'),
    'mask_rcnn': ('neck.fpn_convs', 'rpn_head.rpn_conv',
                  'roi_head.bbox_head.shared_fcs.1'),
    'cascade_rcnn': ('neck.fpn_convs', 'rpn_head.rpn_conv', 'neck.fpn_convs'),
    'libra_rcnn': ('neck.1', 'rpn_head.rpn_conv',
                   'roi_head.bbox_head.shared_fcs.1'),
    'dynamic_rcnn': ('neck.fpn_convs', 'rpn_head.rpn_conv',
                     'roi_head.bbox_head.shared_fcs.1'),
    'double_head': ('neck.fpn_convs', 'rpn_head.rpn_conv', 'neck.fpn_convs'),
    'retinanet': ('neck.fpn_convs', 'neck.fpn_convs'),
    'atss': ('neck.fpn_convs', 'neck.fpn_convs'),
    'gfl': ('neck.fpn_convs', 'neck.fpn_convs'),
    'fcos': ('neck.fpn_convs', 'neck.fpn_convs'),
    'rtmdet': ('neck.out_convs', 'neck.out_convs'),
}


@pytest.mark.parametrize('name', list(DETECTORS))
def test_default_shared_layer(name, tmp_path, tiny_data):
    """The grad_norm provider's default W on the real detector: for all of
    its losses, then for each cls/reg pair."""
    det = DETECTORS[name]
    model = MODELS.build(detector_cfg(name, str(tmp_path), tiny_data, 1,
                                      {}).model)

    def layer(tasks):
        provider = build_signal_provider(dict(type='grad_norm'))
        provider.attach(model, {t: [model.get_submodule(p) for p in (
            [det.losses[t]] if isinstance(det.losses[t], str)
            else det.losses[t])] for t in tasks})
        return provider.layer_names[0]

    found = (layer(det.losses), *(layer(pair) for pair in det.pairs))
    assert found == SHARED_LAYERS[name]
