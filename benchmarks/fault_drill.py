"""Fault drill: train a tiny detector while injecting faults, then check that
nothing was lost that should not be.

The detector is the demo config's narrow ResNet-18 Faster R-CNN (BatchNorm
in training mode, AdamW, clipped gradients, linear warm-up then cosine) on
generated 96x64 images, trained by ``tools/train.py`` with the non-finite
guard's ``skip`` policy. At random iterations (fixed by ``--seed``) it gets

* ``nan_loss``: the RPN box loss is NaN;
* ``inf_loss``: the R-CNN classification loss is inf;
* ``nan_forward``: a NaN input to the backbone (every loss is NaN, and the
  BN running statistics of that forward pass are NaN);
* ``degenerate_box``: a zero-width ground-truth box added to the batch after
  the pipeline (as if the config had no ``FilterAnnotations``);
* ``kill``: the training process is killed (SIGKILL, no clean-up), then
  restarted with ``--resume`` from its last checkpoint.

A reference run trains on the same data with the same schedule, degenerate
boxes included, but without the other faults: at their iterations it takes
no step at all (and, like the faulty run, the kill is absent). If the guard
leaves no trace of a skipped iteration and the resume restores everything,
the two runs end in the same state, bit for bit: parameters, buffers (BN
statistics) and optimizer state. The drill prints what it injected, what the
run survived, the iterations lost (skipped updates; iterations redone after
the kill) and whether the final states are finite and equal; it exits 1 when
a check fails.

A resume in mmengine 0.10.7 is not bit-exact by itself: torch's RNG state,
from which the RPN/R-CNN samplers draw, is not saved in checkpoints (the
Runner re-seeds), and with a per-epoch sampler every re-created DataLoader
iterator draws a seed from it, also while the resumed loop skips the
batches already trained. So the drill loads data with mmengine's
``InfiniteSampler`` (one DataLoader iterator, made before the checkpoint is
loaded) and its ``RngStateHook`` carries torch's RNG state across the resume;
numpy's (``RandomFlip``) comes out right because the resumed loop replays the
pipeline over the skipped batches. Around an injected fault the faulty run
restores torch's RNG state, as the reference run, which does not run those
iterations' forward pass, draws nothing there.

    python benchmarks/fault_drill.py                  # 300 iterations
    python benchmarks/fault_drill.py --iters 12 --checkpoint-interval 4 \\
        --faults 1 --work-dir /tmp/drill             # smoke run
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import random
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.structures import InstanceData

from mmdet.registry import HOOKS
from mmdet_alwa.utils.checkpoint_safety import safe_checkpoint_loading

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs/demo/faster_rcnn_r18_demo.py')
NUMERICAL = ('nan_loss', 'inf_loss', 'nan_forward')
KINDS = NUMERICAL + ('degenerate_box', )
LOG = 'drill_faults.jsonl'


def _unwrap(model):
    return getattr(model, 'module', model)


@HOOKS.register_module(force=True)
class FaultInjectionHook(Hook):
    """Injects the drill's faults.

    Args:
        faults: ``[iteration, kind]`` pairs (0-based iterations).
        kill_at: SIGKILL this process before this iteration.
        reference: the reference run: numerical faults are replaced by an
            iteration without a forward pass or step; degenerate boxes stay.
    """

    priority = 'VERY_HIGH'

    def __init__(self, faults: List[list], kill_at: Optional[int] = None,
                 reference: bool = False) -> None:
        self.faults: Dict[int, str] = {int(i): k for i, k in faults}
        bad = set(self.faults.values()) - set(KINDS)
        if bad:
            raise ValueError(f'unknown fault kinds {sorted(bad)}; '
                             f'known: {KINDS}')
        self.kill_at = kill_at
        self.reference = reference
        self.armed: Optional[str] = None
        self._rng = None
        self._skipped_before = 0

    def before_run(self, runner) -> None:
        model = _unwrap(runner.model)
        if self.reference:
            train_step = model.train_step

            def reference_step(data, optim_wrapper):
                if self.faults.get(runner.iter) in NUMERICAL:
                    return dict(loss=torch.zeros(()))
                return train_step(data, optim_wrapper)
            model.train_step = reference_step
            return

        def scale(kind, factor):
            return lambda m, a, out: out * factor \
                if self.armed == kind else None
        model.rpn_head.loss_bbox.register_forward_hook(
            scale('nan_loss', math.nan))
        model.roi_head.bbox_head.loss_cls.register_forward_hook(
            scale('inf_loss', math.inf))
        model.backbone.register_forward_pre_hook(
            lambda m, args: (args[0] * math.nan, )
            if self.armed == 'nan_forward' else None)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        kind = self.faults.get(runner.iter)
        self._skipped_before = runner.optim_wrapper.num_skipped
        if kind == 'degenerate_box':
            _add_degenerate_box(data_batch['data_samples'][0])
        elif kind in NUMERICAL and not self.reference:
            self.armed = kind
            # the reference draws nothing at this iteration
            self._rng = torch.get_rng_state()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        kind = self.faults.get(runner.iter)
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None
        self.armed = None
        if kind is None:
            return
        skipped = runner.optim_wrapper.num_skipped > self._skipped_before
        loss = float(outputs['loss']) if outputs else math.nan
        with open(osp.join(runner.work_dir, LOG), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter, kind=kind,
                                    skipped=skipped, loss=loss)) + '\n')


def _add_degenerate_box(sample) -> None:
    gt = sample.gt_instances
    boxes = gt.bboxes
    extra = torch.tensor([[20., 10., 20., 40.]])  # zero width
    if isinstance(boxes, torch.Tensor):
        boxes = torch.cat([boxes, extra.to(boxes)])
    else:  # mmdet's HorizontalBoxes
        boxes = type(boxes).cat([boxes, type(boxes)(extra.to(boxes.tensor))])
    sample.gt_instances = InstanceData(
        bboxes=boxes, labels=torch.cat([gt.labels, gt.labels.new_zeros(1)]))


@HOOKS.register_module(force=True)
class RngStateHook(Hook):
    """Saves torch's RNG state with each checkpoint and restores it on
    resume (mmengine re-seeds instead, and then replays the data loader)."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['drill_torch_rng'] = torch.get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'drill_torch_rng' in checkpoint:
            torch.set_rng_state(checkpoint['drill_torch_rng'])


def plan(iters: int, num_faults: int, checkpoint_interval: int,
         seed: int) -> dict:
    """Random fault iterations: ``num_faults`` of each kind, at distinct
    iterations two or more apart, and a kill between checkpoints."""
    rng = random.Random(seed)
    kill_lo = checkpoint_interval + 1
    if iters < kill_lo + 2:
        raise ValueError(f'--iters {iters} leaves no room for a kill after '
                         f'the first checkpoint at {checkpoint_interval}')
    kill_at = rng.randrange(kill_lo, iters - 1)
    free = [i for i in range(1, iters) if i != kill_at]
    rng.shuffle(free)
    chosen: List[int] = []
    for i in free:
        if len(chosen) == num_faults * len(KINDS):
            break
        if all(abs(i - j) >= 2 for j in chosen):
            chosen.append(i)
    if len(chosen) < num_faults * len(KINDS):
        raise ValueError(f'--iters {iters} is too short for {num_faults} '
                         f'fault(s) of each of {len(KINDS)} kinds')
    faults = sorted([i, KINDS[n % len(KINDS)]] for n, i in enumerate(chosen))
    return dict(faults=faults, kill_at=kill_at)


def make_config(work_dir: str, iters: int, checkpoint_interval: int,
                faults: list, seed: int) -> str:
    """The demo config, shrunk to 16 images of 96x64 and an iteration loop;
    returns the path of the dumped config."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO)
    data_root = osp.join(work_dir, 'data') + '/'
    img = (96, 64)
    cfg.data_root = data_root
    cfg.demo_data = dict(num_train=16, num_val=2, img_size=img, seed=seed)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False,
                  sampler=dict(type='InfiniteSampler', shuffle=True))
    loader.dataset.data_root = data_root
    for t in loader.dataset.pipeline:
        if t['type'] == 'Resize':
            t['scale'] = img
    cfg.model.train_cfg.rcnn.sampler.num = 64
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'] = cfg[f'{split}_cfg'] = None
        cfg[f'{split}_evaluator'] = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters + 1)
    warmup = min(20, iters // 4)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
             end=iters, T_max=iters - warmup,
             eta_min=cfg.optim_wrapper.optimizer.lr * 0.01)]
    cfg.optim_wrapper.update(nonfinite_policy='skip', max_consecutive_skips=3)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=checkpoint_interval,
        max_keep_ckpts=-1, save_last=True)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=25)
    cfg.log_processor = dict(type='LogProcessor', by_epoch=False,
                             window_size=25)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.custom_imports = dict(imports=['mmdet_alwa', 'fault_drill'],
                              allow_failed_imports=False)
    # the guard alone: a balancer would see the faulty run's NaN losses but
    # the reference run's finite ones, so the two could not end equal
    cfg.default_hooks.pop('alwa', None)
    cfg.custom_hooks = [dict(type='FaultInjectionHook', faults=faults),
                        dict(type='RngStateHook')]
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       mp_cfg=dict(mp_start_method='fork',
                                   opencv_num_threads=0),
                       dist_cfg=dict(backend='gloo'))
    cfg.randomness = dict(seed=seed, deterministic=False)
    path = osp.join(work_dir, 'drill_cfg.py')
    os.makedirs(work_dir, exist_ok=True)
    cfg.dump(path)
    return path


def train(cfg_path: str, work_dir: str, *extra: str) -> int:
    """``tools/train.py`` in a child process; its return code."""
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [REPO, osp.join(REPO, 'benchmarks'),
                    os.environ.get('PYTHONPATH', '')]))
    with open(osp.join(work_dir + '.log'), 'a') as log:
        proc = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools/train.py'), cfg_path,
             '--work-dir', work_dir, *extra],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return proc.returncode


def final_state(work_dir: str, iters: int) -> dict:
    with safe_checkpoint_loading():  # the resume, too, loaded it so
        ckpt = torch.load(osp.join(work_dir, f'iter_{iters}.pth'),
                          map_location='cpu')
    return dict(model=ckpt['state_dict'],
                optim=ckpt['optimizer']['state'],
                hub=ckpt['message_hub'])


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _equal(a[k], b[k]) for k in a)
    return a == b


def _max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference of the floating tensors (NaN if any)."""
    diffs = [float((a[k].double() - b[k].double()).abs().max())
             for k in a if a[k].is_floating_point() and a[k].numel()]
    return math.nan if any(map(math.isnan, diffs)) else max(diffs, default=0.)


def _skips(state: dict) -> int:
    buf = state['hub'].get('log_scalars', {}).get('train/nonfinite_skips')
    return int(buf.current()) if buf is not None else 0


def _fault_log(work_dir: str) -> Dict[int, dict]:
    """The last record of each fault iteration (a resumed run redoes the
    iterations after its checkpoint)."""
    out = {}
    path = osp.join(work_dir, LOG)
    if osp.isfile(path):
        for line in open(path):
            rec = json.loads(line)
            out[rec['iter']] = rec
    return out


def run_drill(iters: int, checkpoint_interval: int, num_faults: int,
              seed: int, work_dir: str) -> dict:
    """Run the reference and the faulty run; return the figures."""
    start = time.monotonic()
    p = plan(iters, num_faults, checkpoint_interval, seed)
    cfg_path = make_config(work_dir, iters, checkpoint_interval, p['faults'],
                           seed)
    ref_dir, run_dir = osp.join(work_dir, 'reference'), \
        osp.join(work_dir, 'faulty')
    rc_ref = train(cfg_path, ref_dir, '--cfg-options',
                   'custom_hooks.0.reference=True')
    rc_kill = train(cfg_path, run_dir, '--cfg-options',
                    f'custom_hooks.0.kill_at={p["kill_at"]}')
    ckpts = sorted(int(osp.basename(c)[5:-4]) for c in
                   glob.glob(osp.join(run_dir, 'iter_*.pth')))
    resumed_from = ckpts[-1] if ckpts else 0
    rc_resume = train(cfg_path, run_dir, '--resume')
    figures = dict(plan=p, rc=dict(reference=rc_ref, killed=rc_kill,
                                   resumed=rc_resume),
                   resumed_from=resumed_from,
                   redone=p['kill_at'] - resumed_from,
                   log=dict(reference=ref_dir + '.log', faulty=run_dir +
                            '.log'))
    if rc_ref or rc_resume or rc_kill != -signal.SIGKILL:
        figures['ok'] = False
        return figures
    ref, run = final_state(ref_dir, iters), final_state(run_dir, iters)
    records = _fault_log(run_dir)
    figures.update(
        records=records, skips=_skips(run), ref_skips=_skips(ref),
        finite=all(bool(torch.isfinite(v.double()).all())
                   for v in run['model'].values()),
        equal_model=_equal(run['model'], ref['model']),
        equal_optim=_equal(run['optim'], ref['optim']),
        max_diff=_max_diff(run['model'], ref['model']),
        seconds=time.monotonic() - start)
    numerical = [i for i, k in p['faults'] if k in NUMERICAL]
    figures['survived_numerical'] = sum(
        records.get(i, {}).get('skipped', False) for i in numerical)
    figures['ok'] = (figures['finite'] and figures['equal_model'] and
                     figures['equal_optim'] and
                     figures['survived_numerical'] == len(numerical) and
                     figures['skips'] == len(numerical) + figures['ref_skips'])
    return figures


def report(f: dict, iters: int) -> str:
    p = f['plan']
    kinds = {k: [i for i, kk in p['faults'] if kk == k] for k in KINDS}
    lines = [f'fault drill: {iters} iterations, faulty run killed before '
             f'iteration {p["kill_at"] + 1} (SIGKILL) and resumed']
    for k, its in kinds.items():
        lines.append(f'  {k:15s} at iterations {[i + 1 for i in its]}')
    if 'records' not in f:
        lines.append(f'FAILED: a training process failed: return codes '
                     f'{f["rc"]} (logs: {f["log"]})')
        return '\n'.join(lines)
    rec = f['records']
    injected = len(p['faults']) + 1
    degenerate = kinds['degenerate_box']
    deg_skipped = sum(rec.get(i, {}).get('skipped', False)
                      for i in degenerate)
    # a fault is survived when the run went on to the end with finite
    # weights: numerical faults by a skipped update, degenerate boxes by a
    # finite or a skipped update, the kill by a resume to the same state
    finite = f['finite']
    survived = finite * (f['survived_numerical'] + len(degenerate)) + (
        f['rc']['resumed'] == 0 and f['equal_model'] and f['equal_optim'])
    lines += [
        f'faults injected: {injected} ({len(p["faults"])} at iterations + '
        f'1 kill)',
        f'faults survived: {survived}/{injected} (numerical: '
        f'{f["survived_numerical"]}/{injected - 1 - len(degenerate)} '
        f'skipped by the guard; degenerate boxes: {deg_skipped}/'
        f'{len(degenerate)} gave a non-finite loss and were skipped (in the '
        f'reference run too), {len(degenerate) - deg_skipped} trained '
        f'finitely; kill: resumed from iteration {f["resumed_from"]})',
        f'iterations lost: {f["skips"]} skipped updates '
        f'(train/nonfinite_skips; the reference run skipped '
        f'{f["ref_skips"]}), {f["redone"]} iterations redone after the kill',
        f'parameters and buffers finite: {f["finite"]}',
        f'final state equal to the reference run\'s: parameters and buffers '
        f'{f["equal_model"]} (max |diff| {f["max_diff"]:.3g}), optimizer '
        f'state {f["equal_optim"]}',
        f'time: {f["seconds"]:.0f} s',
        'OK' if f['ok'] else 'FAILED']
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--checkpoint-interval', type=int, default=50)
    parser.add_argument('--faults', type=int, default=3,
                        help='faults of each kind (%(default)s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', default=osp.join(
        REPO, 'work_dirs', 'fault_drill'))
    args = parser.parse_args(argv)
    if osp.exists(osp.join(args.work_dir, 'faulty')):
        parser.error(f'{args.work_dir} holds an earlier drill; remove it or '
                     f'give another --work-dir')
    figures = run_drill(args.iters, args.checkpoint_interval, args.faults,
                        args.seed, args.work_dir)
    print(report(figures, args.iters))
    return 0 if figures['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
