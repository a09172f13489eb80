"""benchmarks/common.py: the interleaved timer, its ratios and the flags."""
import os.path as osp
from contextlib import nullcontext

import pytest

from _helpers import REPO_ROOT, load_tool

common = load_tool('benchmarks/common.py', 'bench_common')


def test_interleave_rotates_and_takes_medians():
    now = [0.]  # a fake clock that the steps advance
    calls = []

    def step(name, cost):
        def run(k):
            calls.append((name, k))
            now[0] += cost
        return run

    entered = []
    t = common.interleave(
        dict(plain=step('plain', 1.), ours=step('ours', 1.5),
             other=step('other', .5)),
        rounds=3, iters=2, warmup=1, clock=lambda: now[0],
        contexts=dict(ours=lambda: entered.append(now[0]) or nullcontext()))
    # warm-up then every variant in an order rotated by one per round
    order = [n for n, _ in calls[3::2]]
    assert [n for n, _ in calls[:3]] == ['plain', 'ours', 'other']
    assert order == ['plain', 'ours', 'other', 'ours', 'other', 'plain',
                     'other', 'plain', 'ours']
    # every variant sees the same step indices, the warm-up's first
    for name in ('plain', 'ours', 'other'):
        assert [k for n, k in calls if n == name] == list(range(7))
    assert len(entered) == 4  # warm-up + 3 rounds
    assert t.times['ours'] == [1.5] * 3
    assert t.median('plain') == 1.
    assert t.ratio('ours', 'plain') == pytest.approx(1.5)
    assert t.ratio('other', 'plain') == pytest.approx(.5)

    table = common.ratio_table({'a': t, 'b': t}, 'plain', dict(ours=1.25))
    lines = table.splitlines()
    assert lines[0] == '| variant | a | b | target |'
    assert lines[2] == '| plain (ms/step) | 1000.0 | 1000.0 | |'
    assert lines[3] == '| ours | 1.500x over | 1.500x over | <= 1.25x |'
    assert lines[4] == '| other | 0.500x | 0.500x | - |'


def test_ratio_is_median_of_paired_rounds():
    t = common.Timings(dict(plain=[1., 2., 4.], ours=[1.1, 2., 8.]))
    assert t.ratio('ours', 'plain') == pytest.approx(1.1)


def test_flags():
    p = common.make_parser('doc', config=None, rounds=None, iters=5,
                           warmup=1, clock='auto')
    args = common.parse_args(p, ['--img-size', '96', '--device', 'cpu'])
    assert args.img_size == (96, 96)
    assert (args.rounds, args.iters, args.clock) == (5, 1, 'cpu')
    assert 'step' in common.describe(args)
    p = common.make_parser('doc', config=None, rounds=2, iters=3, warmup=1)
    args = common.parse_args(p, ['--img-size', '96', '64', '--device', 'cpu'])
    assert (args.img_size, args.rounds, args.iters) == ((96, 64), 2, 3)
    with pytest.raises(SystemExit):
        common.parse_args(p, ['--img-size', '1', '2', '3'])
    with pytest.raises(SystemExit):
        common.parse_args(p, ['--device', 'cuda', '--clock', 'cpu'])


def _bench_balancers():
    import sys
    sys.path.insert(0, osp.join(REPO_ROOT, 'benchmarks'))
    try:
        import bench_balancers
    finally:
        sys.path.remove(osp.join(REPO_ROOT, 'benchmarks'))
    return bench_balancers


def test_hook_clock_counts_the_balancers_own_calls():
    """The in-hook time: a fake clock ticking 1 per reading; nested calls
    count once (the outer one), only hooks added after ``module_hooks``
    are wrapped, rounds average their steps after the warm-up."""
    import torch
    bench = _bench_balancers()
    ticks = iter(range(1000))
    timer = bench.HookClock(lambda: next(ticks))
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append('theirs'))
    known = timer.module_hooks(model)
    inner = timer.wrap(lambda: calls.append('inner'))
    model[0].register_forward_hook(lambda *a: (calls.append('ours'),
                                               inner()))
    timer.wrap_module_hooks(model, known)
    for _ in range(3):
        timer.start_step()
        model(torch.zeros(1, 2))
    # each step: ours reads the clock at entry (t) and exit (t + 1); the
    # nested inner one does not read it
    assert timer.steps == [1, 1, 1]
    assert calls == ['theirs', 'ours', 'inner'] * 3
    assert timer.per_round(warmup=1, iters=1) == [1, 1]
    assert timer.per_round(warmup=1, iters=2) == [1]


def _load_gpu_check():
    return load_tool('benchmarks/gpu_check.py')


def test_gpu_check_attributes_a_sync_to_the_calling_line(tmp_path):
    """A sync warning (as torch's sync debug mode issues it) is attributed
    to the line of the user code that made the call, through the frames of
    the warnings machinery (hand-checked line number)."""
    import sys
    import warnings
    gpu_check = _load_gpu_check()
    user = tmp_path / 'user_code.py'
    user.write_text('import warnings\n\n\ndef call():\n'
                    "    warnings.warn('called a synchronizing CUDA "
                    "operation')\n")
    module = load_tool(str(user))
    seen = []

    def show(message, category, filename, lineno, file=None, line=None):
        seen.append(gpu_check._caller(sys._getframe(1)))

    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.showwarning = show
        module.call()
    assert seen == [(str(user), 5)]


def test_gpu_check_quick_probes_hold_the_read_budget(tmp_path):
    """The probe part of benchmarks/gpu_check.py on the CPU (tiny models):
    plain mmdet makes no read from mmdet_alwa, every balancing hook exactly
    one per iteration (the issue's budget); AMP is reported as not measured
    on a CPU."""
    gpu_check = _load_gpu_check()
    out = str(tmp_path)
    assert gpu_check.main(['--out', out, '--quick', '--device', 'cpu',
                           '--skip', 'check', 'bench', 'demo']) == 0
    rows = [line.split('|')[1:-1] for line in
            (tmp_path / 'syncs.md').read_text().splitlines()
            if line.startswith('| faster_rcnn') or line.startswith(
                '| retinanet')]
    assert len(rows) == 2 * (1 + len(gpu_check.SYNC_METHODS))
    for family, method, ours, total, reads, where in rows:
        assert float(reads) == (0 if method.strip() == 'plain' else 1), rows
        assert float(ours) == 0 and float(total) == 0  # no CUDA: no syncs
    assert 'not measured on cpu' in (tmp_path / 'amp.md').read_text()
    assert '| probes (syncs, AMP) | ok |' in (
        tmp_path / 'summary.md').read_text()


def test_count_ops_counts_aten_operations():
    """Hand-counted: ``a + b`` then ``.sum()`` are two ATen operations."""
    module = load_tool('benchmarks/count_ops.py')
    import torch
    a, b = torch.ones(3), torch.ones(3)
    counter = module.OpCounter()
    with counter:
        (a + b).sum()
    assert counter.count == 2
