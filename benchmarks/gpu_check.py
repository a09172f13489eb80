"""The package on a GPU, by one command: install check, balancer cost at full
size, host syncs per iteration, GradNorm's norms under AMP, and the demo.

    python benchmarks/gpu_check.py --out gpu_check/            # on a GPU
    python benchmarks/gpu_check.py --out /tmp/gc --quick       # a CPU smoke run

What it runs (at most three training processes at a time on the one GPU:
more only time-slice it), each writing its result under ``--out`` as it goes,
so that a run cut short still leaves what finished:

1. ``tools/misc/check_install.py`` (``--expect-cuda`` on a GPU):
   ``check_install.txt``.
2. Three processes in parallel:

   * ``benchmarks/bench_balancers.py --size full --device cuda --clock wall``
     on the 11 detector families of the test matrix: ``bench_balancers.md``;
   * the probes of this file (``--part probes``): ``syncs.md``, the host
     syncs per training iteration that come from mmdet_alwa's code, for every
     balancer on Faster R-CNN and RetinaNet (``torch.cuda.set_sync_debug_mode
     ('warn')``, each synchronising call attributed to the Python file that
     made it, and the read counter of :mod:`mmdet_alwa.utils.host_reads`),
     then ``amp.md``: GradNorm's gradient norms in fp32 and under AMP (fp16
     with mmengine's ``AmpOptimWrapper`` and its dynamic loss scale) on the
     same full-size Faster R-CNN, weights and batches;
   * ``tools/demo.py`` (the demo Faster R-CNN with ALWA, trained and
     evaluated): ``demo.txt``.
3. ``summary.md``: all of it, in order, with the time each part took.

``--deadline`` (seconds, default 450) bounds the whole run: a part still
running then is stopped and reported as such.
"""
import argparse
import copy
import os
import os.path as osp
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(REPO, 'mmdet_alwa')
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

#: the balancers whose syncs are counted (bench_balancers' method names)
SYNC_METHODS = ('alwa', 'dwa', 'guided', 'uncertainty', 'dtp', 'gradnorm',
                'tdb', 'gradnorm_output')
SYNC_FAMILIES = ('faster_rcnn', 'retinanet')
#: the balancers timed at full size (the 15-minute device budget): the
#: first GPU check's methods, FAMO and GLS (loss-only), UPGrad and MGDA
#: (gradient aggregation)
GPU_BENCH_METHODS = ('alwa', 'guided', 'dwa', 'dtp', 'uncertainty',
                     'gradnorm', 'tdb', 'gradnorm_output', 'tdb_output',
                     'gradnorm_pair', 'tdb_pair', 'famo', 'gls', 'upgrad',
                     'mgda')


# ----------------------------------------------------------------- probes
def _drive(name: str, method: Optional[str], size: str, device: str,
           img_size, iters: int, warmup: int, optim: Optional[dict] = None):
    """A detector of family ``name`` with ``method``'s LossWeightingHook (or
    none), driven as mmengine's Runner drives it, at learning rate 0.

    Returns ``(step, hook)``: ``step(k)`` runs training iteration ``k``."""
    import torch
    from mmengine.logging import MessageHub, MMLogger
    from mmdet.registry import HOOKS, OPTIM_WRAPPERS
    from types import SimpleNamespace

    import bench_balancers as bb
    det = bb.DETECTORS[name]
    model = bb.build_family(name, size).to(device)
    batches = bb.make_batches(img_size, 2, warmup + iters, bb.NUM_CLASSES, 4)
    if det.masks:
        batches = bb.with_masks(batches)
    wrapper = OPTIM_WRAPPERS.build(dict(
        optim or dict(type='OptimWrapper'),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0,
                                  momentum=0.9)))
    runner = SimpleNamespace(
        model=model, optim_wrapper=wrapper, iter=0,
        logger=MMLogger.get_instance('gpu_check', log_level='WARNING'),
        message_hub=MessageHub.get_instance(f'gpu_check_{name}_{method}'))
    hook = None
    if method is not None:
        rule, losses, extra = bb.METHODS[method](det)
        extra = copy.deepcopy(extra)
        if rule['type'] == 'DTP':  # the device path: no row compaction
            extra.setdefault('signals', {})['kpi'] = dict(
                type='kpi', compact=False)
        hook = HOOKS.build(dict(type='LossWeightingHook', name=method,
                                rule=rule, losses=losses, **extra))
        hook.before_run(runner)

    def step(k: int) -> None:
        torch.manual_seed(k)
        if hook:
            hook.before_train_iter(runner, k)
        log_vars = model.train_step(batches[k % len(batches)], wrapper)
        {key: v.item() for key, v in log_vars.items()}  # RuntimeInfoHook
        if hook:
            hook.after_train_iter(runner, k)
        runner.iter += 1

    return step, hook


def _caller(frame) -> Optional[str]:
    """The innermost frame outside torch, warnings and this file's handler:
    ``(file, line)`` of the Python code whose call synchronised."""
    import torch
    torch_dir = osp.dirname(torch.__file__) + os.sep
    skip = (torch_dir, osp.dirname(warnings.__file__) + os.sep + 'warnings',
            osp.join(PACKAGE, 'utils', 'host_reads.py'))  # its wrappers
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(skip) or name == __file__
                and frame.f_code.co_name == 'show'):
            return name, frame.f_lineno
        frame = frame.f_back
    return None


def count_syncs(device: str, size: str, img_size, iters: int = 5,
                warmup: int = 2) -> List[dict]:
    """Per family and method: host syncs per iteration made from mmdet_alwa's
    code and made anywhere, by CUDA's sync debug mode (each warning
    attributed to the innermost frame outside torch at the moment it is
    issued; on CPU there are none), and the reads counted by
    :func:`mmdet_alwa.utils.host_reads.count_host_reads`."""
    import torch
    from mmdet_alwa.utils.host_reads import count_host_reads
    cuda = device.startswith('cuda')
    rows = []
    for family in SYNC_FAMILIES:
        for method in (None, ) + SYNC_METHODS:
            step, _ = _drive(family, method, size, device, img_size, iters,
                             warmup)
            for k in range(warmup):
                step(k)
            if cuda:
                torch.cuda.synchronize()
            syncs: List[tuple] = []

            def show(message, category, filename, lineno, file=None,
                     line=None):
                if 'synchroniz' in str(message).lower():
                    syncs.append(_caller(sys._getframe(1)))

            with warnings.catch_warnings():
                warnings.simplefilter('always')
                warnings.showwarning = show
                if cuda:
                    torch.cuda.set_sync_debug_mode('warn')
                try:
                    with count_host_reads() as counter:
                        for k in range(warmup, warmup + iters):
                            step(k)
                finally:
                    if cuda:
                        torch.cuda.set_sync_debug_mode('default')
            ours = [s for s in syncs
                    if s and s[0].startswith(PACKAGE + os.sep)]
            sites: Dict[str, int] = {}
            for name, line in ours:
                site = f'{osp.relpath(name, REPO)}:{line}'
                sites[site] = sites.get(site, 0) + 1
            rows.append(dict(
                family=family, method=method or 'plain',
                ours=len(ours) / iters, total=len(syncs) / iters,
                reads=counter.total / iters,
                sites=', '.join(f'{s} x{n / iters:g}'
                                for s, n in sorted(sites.items()))))
            print(f'syncs {family} {method}: {rows[-1]}', flush=True)
    return rows


def syncs_table(rows: List[dict], device: str) -> str:
    lines = [f'Host syncs per training iteration ({device}; sync debug mode '
             f'warnings by the file that made the call; reads: '
             f'mmdet_alwa.utils.host_reads.count_host_reads). Budget: '
             f'<= 1 per iteration per hook.', '',
             '| family | method | syncs from mmdet_alwa | all syncs '
             '(mmdet\'s included) | reads counted | where (ours) |',
             '|---|---|---|---|---|---|']
    for r in rows:
        reads = f"{r['reads']:g}"
        lines.append(f"| {r['family']} | {r['method']} | {r['ours']:g} | "
                     f"{r['total']:g} | {reads} | {r['sites'] or '-'} |")
    return '\n'.join(lines)


def amp_norms(device: str, size: str, img_size, iters: int = 3,
              family: str = 'faster_rcnn') -> str:
    """GradNorm's ``grad_norm`` signal in fp32, under AMP through the optim
    wrapper's loss scaler, and under AMP unscaled (the provider not given the
    wrapper: what it measured before), same weights and batches: the norms
    and their relative difference to fp32 per task and step."""
    if not device.startswith('cuda'):
        return ('GradNorm under AMP: not measured on ' + device + ' '
                '(mmengine 0.10.7\'s AmpOptimWrapper needs a GPU; the CPU '
                'check is tests/test_engine/test_gradnorm_amp.py)')
    amp = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
    runs = {}
    for label, optim in (('fp32', None), ('amp', amp), ('unscaled', amp)):
        step, hook = _drive(family, 'gradnorm', size, device, img_size,
                            iters, 0, optim)
        provider = hook.providers['grad_norm']
        if label == 'unscaled':
            provider.optim_wrapper = None
        seen = []
        for k in range(iters):
            step(k)
            seen.append({t: float(v) for t, v in provider.norms.items()})
        runs[label] = seen
    tasks = list(runs['fp32'][0])

    def rel(a, b):
        return abs(b - a) / abs(a) if a else float('inf')

    lines = [f'GradNorm\'s gradient norms at the shared layer: fp32; AMP '
             f'(fp16, AmpOptimWrapper\'s dynamic loss scale) through the '
             f'scaler; AMP unscaled (as before). {family} ({size}), '
             f'{device}, same weights and batches, lr 0', '',
             '| step | task | fp32 | AMP | rel. diff. | AMP unscaled | '
             'rel. diff. |', '|---|---|---|---|---|---|---|']
    worst = {'amp': 0.0, 'unscaled': 0.0}
    zeros = {'amp': 0, 'unscaled': 0}
    for k in range(iters):
        for t in tasks:
            a = runs['fp32'][k][t]
            cells = []
            for label in ('amp', 'unscaled'):
                b = runs[label][k][t]
                worst[label] = max(worst[label], rel(a, b))
                zeros[label] += b == 0 and a != 0
                cells.append(f'{b:.6g} | {rel(a, b):.2e}')
            lines.append(f'| {k} | {t} | {a:.6g} | ' + ' | '.join(cells)
                         + ' |')
    lines += ['', f'largest relative difference to fp32: through the scaler '
              f'{worst["amp"]:.2e}, unscaled {worst["unscaled"]:.2e}; zero '
              f'where fp32 is not: through the scaler {zeros["amp"]}, '
              f'unscaled {zeros["unscaled"]}']
    return '\n'.join(lines)


def probes(args) -> int:
    import mmdet_alwa  # noqa: F401
    size = 'tiny' if args.quick else 'full'
    img = (160, 128) if args.quick else (1024, 704)
    iters = 2 if args.quick else 5
    rows = count_syncs(args.device, 'tiny' if args.quick else 'full', img,
                       iters=iters, warmup=1 if args.quick else 2)
    _write(args.out, 'syncs.md', syncs_table(rows, args.device))
    _write(args.out, 'amp.md', amp_norms(args.device, size, img,
                                         iters=2 if args.quick else 3))
    return 0


# ------------------------------------------------------------- orchestration
def _write(out: str, name: str, text: str) -> None:
    with open(osp.join(out, name), 'w') as f:
        f.write(text.rstrip() + '\n')


class Part:
    """One command of the run, its output streamed to ``out/<log>``."""

    def __init__(self, name: str, cmd: List[str], log: str, out: str):
        self.name, self.cmd, self.log = name, cmd, osp.join(out, log)
        self.proc: Optional[subprocess.Popen] = None
        self.start = self.end = None
        self.status = 'not started'

    def launch(self) -> None:
        self.start = time.time()
        self._file = open(self.log, 'w')
        self._file.write('$ ' + ' '.join(self.cmd) + '\n')
        self._file.flush()
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=self._file,
                                     stderr=subprocess.STDOUT)

    def poll(self) -> bool:
        if self.proc is None or self.end is not None:
            return True
        rc = self.proc.poll()
        if rc is None:
            return False
        self.end = time.time()
        self.status = 'ok' if rc == 0 else f'failed (exit {rc})'
        self._file.close()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.end is None:
            self.proc.kill()
            self.proc.wait()
            self.end = time.time()
            self.status = 'stopped at the deadline'
            self._file.close()

    @property
    def seconds(self) -> str:
        if self.start is None:
            return '-'
        return f'{(self.end or time.time()) - self.start:.0f} s'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', required=True, help='folder for the results')
    p.add_argument('--device', default=None,
                   help='default: cuda if available, else cpu')
    p.add_argument('--quick', action='store_true',
                   help='tiny models, 2 families, few steps (a smoke run)')
    p.add_argument('--deadline', type=float, default=450,
                   help='seconds for the whole run (default %(default)s)')
    p.add_argument('--skip', nargs='*', default=[],
                   choices=('check', 'bench', 'probes', 'demo'))
    p.add_argument('--part', choices=('probes', ), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device is None:
        import torch
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    os.makedirs(args.out, exist_ok=True)
    if args.part == 'probes':
        return probes(args)

    t0 = time.time()
    py = sys.executable
    cuda = args.device.startswith('cuda')
    parts = []
    if 'check' not in args.skip:
        parts.append(Part('check_install', [
            py, 'tools/misc/check_install.py'] + (
                ['--expect-cuda'] if cuda else []), 'check_install.txt',
            args.out))
    parallel = []
    if 'bench' not in args.skip:
        bench = [py, 'benchmarks/bench_balancers.py', '--device', args.device,
                 '--clock', 'wall' if cuda else 'cpu']
        bench += (['--size', 'tiny', '--img-size', '160', '128', '--rounds',
                   '1', '--iters', '1', '--detectors', 'faster_rcnn',
                   'retinanet', '--methods', 'alwa', 'gradnorm']
                  if args.quick else
                  ['--size', 'full', '--rounds', '4', '--iters', '2',
                   '--methods', *GPU_BENCH_METHODS])
        parallel.append(Part('bench_balancers', bench, 'bench_balancers.md',
                             args.out))
    if 'probes' not in args.skip:
        parallel.append(Part('probes (syncs, AMP)', [
            py, osp.abspath(__file__), '--part', 'probes', '--out', args.out,
            '--device', args.device] + (['--quick'] if args.quick else []),
            'probes.log', args.out))
    if 'demo' not in args.skip:
        demo = [py, 'tools/demo.py', '--verbose', '--work-dir',
                osp.join(args.out, 'demo_work_dir'), '--num-vis', '2']
        if args.quick:
            demo += ['--cfg-options', 'train_cfg.max_epochs=1']
        parallel.append(Part('demo', demo, 'demo.txt', args.out))

    deadline = t0 + args.deadline
    for part in parts:  # the check first, alone
        part.launch()
        while not part.poll():
            if time.time() > deadline:
                part.stop()
            time.sleep(0.5)
    for part in parallel:  # at most 3 at a time: each one process
        part.launch()
    while not all([part.poll() for part in parallel]):  # poll every one
        if time.time() > deadline:
            for part in parallel:
                part.stop()
        time.sleep(1)
    parts += parallel

    lines = [f'# gpu_check ({args.device}{", quick" if args.quick else ""})',
             '', '| part | status | time |', '|---|---|---|']
    lines += [f'| {p.name} | {p.status} | {p.seconds} |' for p in parts]
    lines.append(f'| total | | {time.time() - t0:.0f} s |')
    for name in ('check_install.txt', 'bench_balancers.md', 'syncs.md',
                 'amp.md'):
        path = osp.join(args.out, name)
        if osp.exists(path):
            with open(path) as f:
                lines += ['', f'## {name}', '', '```', f.read().rstrip(),
                          '```']
    demo_log = osp.join(args.out, 'demo.txt')
    if osp.exists(demo_log):
        with open(demo_log) as f:
            tail = f.read().splitlines()[-25:]
        lines += ['', '## demo.txt (last lines)', '', '```'] + tail + ['```']
    _write(args.out, 'summary.md', '\n'.join(lines))
    print('\n'.join(lines))
    return 0 if all(p.status == 'ok' for p in parts) else 1


if __name__ == '__main__':
    sys.exit(main())
