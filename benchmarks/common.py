"""What the step-time benchmarks share: flags, a resized detector, synthetic
batches and an interleaved timer whose ratios come from the same rounds.

Every variant (plain mmdet, ours, ...) runs blocks of ``iters`` steps; each
round runs one block of every variant in a rotated order (two variants: ABBA),
so that machine load hits them alike. A variant's ratio is the median over
rounds of its mean step time over the baseline's in the same round.
"""
import argparse
import copy
import os.path as osp
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, List, Mapping, Optional

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def make_parser(doc: str, *, config: Optional[str], depth: int = 18,
                width: int = 64, img_size=(160, 120), boxes: int = 4,
                rounds: Optional[int], iters: int, warmup: int,
                clock: str = 'wall', iters_help: str = 'steps per block'
                ) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with the model flags
    ``--config`` (when ``config``, relative to the repository, is given)
    ``--depth --width --img-size --batch-size --boxes`` and the timing flags
    ``--rounds --iters --warmup --device --clock``. With ``rounds=None``
    there is no ``--rounds``: ``--iters`` rounds of one step each are timed
    (see :func:`parse_args`). The arguments give the defaults."""
    p = argparse.ArgumentParser(description=doc.split('\n')[0])
    if config is not None:
        p.add_argument('--config', default=osp.join(REPO, config))
    p.add_argument('--depth', type=int, default=depth,
                   choices=(18, 34, 50, 101))
    p.add_argument('--width', type=int, default=width,
                   help='ResNet base channels (64: the real R18/R50); FPN '
                        'and heads get 4x this')
    p.add_argument('--img-size', type=int, nargs='+', default=img_size,
                   metavar='PX', help='W H, or one size for a square')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--boxes', type=int, default=boxes,
                   help='gt boxes per image')
    if rounds is not None:
        p.add_argument('--rounds', type=int, default=rounds)
    p.add_argument('--iters', type=int, default=iters, help=iters_help)
    p.add_argument('--warmup', type=int, default=warmup,
                   help='untimed steps per variant first')
    p.add_argument('--device',
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--clock', default=clock, choices=('wall', 'cpu', 'auto'),
                   help="cpu: this process's CPU time, which other processes "
                        'on a shared machine do not inflate (CPU device '
                        'only); auto: cpu on a CPU device, else wall '
                        '(default: %(default)s)')
    return p


def parse_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the flags of :func:`make_parser`:
    ``img_size`` becomes ``(W, H)``, ``clock`` ``'wall'`` or ``'cpu'``, and
    without ``--rounds``, ``rounds = iters`` and ``iters = 1``."""
    args = p.parse_args(argv)
    if len(args.img_size) > 2:
        p.error('--img-size takes W H or one size')
    args.img_size = (args.img_size[0], args.img_size[-1])
    cuda = args.device.startswith('cuda')
    if args.clock == 'auto':
        args.clock = 'wall' if cuda else 'cpu'
    elif args.clock == 'cpu' and cuda:
        p.error('--clock cpu misses the GPU work; use wall on cuda')
    if 'rounds' not in args:
        args.rounds, args.iters = args.iters, 1
    return args


def describe(args: argparse.Namespace, detector: str = '') -> str:
    """One line with the setting of a run, from :func:`parse_args`' args."""
    w, h = args.img_size
    return (f'{detector}{" " if detector else ""}R{args.depth}-FPN (width '
            f'{args.width}), {w}x{h} px, batch {args.batch_size}, '
            f'{args.boxes} boxes/img, {args.device}, {args.rounds} rounds x '
            f'{args.iters} steps, interleaved, {args.clock} time')


def build_detector(model_cfg, depth: int, width: int, device: str,
                   num_classes: Optional[int] = None) -> torch.nn.Module:
    """An mmdet detector from a copy of ``model_cfg`` (two-stage with
    ``roi_head`` or one-stage with ``bbox_head``) with a ResNet-``depth`` of
    base width ``width``, FPN and heads of ``4 * width`` channels, no
    pretrained weights, built from seed 0 (same config: same weights).
    Registers mmdet's and our modules first."""
    import mmdet_alwa  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = copy.deepcopy(model_cfg)
    expansion = 1 if depth < 50 else 4
    cfg.backbone.update(depth=depth, base_channels=width, init_cfg=None)
    cfg.neck.update(in_channels=[width * expansion * 2**i for i in range(4)],
                    out_channels=4 * width)
    classes = {} if num_classes is None else dict(num_classes=num_classes)
    if 'roi_head' in cfg:
        cfg.rpn_head.update(in_channels=4 * width, feat_channels=4 * width)
        cfg.roi_head.bbox_roi_extractor.out_channels = 4 * width
        cfg.roi_head.bbox_head.update(in_channels=4 * width, **classes)
    else:
        cfg.bbox_head.update(in_channels=4 * width, feat_channels=4 * width,
                             **classes)
    torch.manual_seed(0)
    return MODELS.build(cfg).to(device).train()


def make_batches(img_size, batch_size: int, num: int, num_classes: int,
                 boxes: int = 4) -> List[dict]:
    """``num`` distinct deterministic batches for ``model.train_step``:
    random uint8 images of ``img_size = (W, H)``, ``boxes`` random gt boxes
    each."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(0)
    w, h = img_size
    batches = []
    for _ in range(num):
        inputs, samples = [], []
        for _ in range(batch_size):
            inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                        dtype=torch.uint8))
            xy = torch.rand(boxes, 2, generator=g) * torch.tensor(
                [w * .6, h * .6])
            wh = (torch.rand(boxes, 2, generator=g) * .3 + .1) * torch.tensor(
                [w, h])
            sample = DetDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                scale_factor=(1., 1.)))
            sample.gt_instances = InstanceData(
                bboxes=torch.cat([xy, xy + wh], 1),
                labels=torch.randint(0, num_classes, (boxes, ), generator=g))
            samples.append(sample)
        batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def make_clock(kind: str, device: str) -> Callable[[], float]:
    """``'cpu'``: this process's CPU time; ``'wall'``: wall time, read after
    the GPU's queued work is done."""
    if kind == 'cpu':
        return time.process_time
    if device.startswith('cuda'):
        def wall() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return wall
    return time.perf_counter


@dataclass
class Timings:
    """``times[variant][r]``: mean seconds per step of round ``r``."""
    times: Dict[str, List[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, name: str, baseline: str) -> float:
        """Median over rounds of ``name``'s time over ``baseline``'s."""
        return statistics.median(
            t / b for t, b in zip(self.times[name], self.times[baseline]))


def interleave(steps: Mapping[str, Callable[[int], object]], *, rounds: int,
               iters: int = 1, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter,
               contexts: Optional[Mapping[str, Callable[[], ContextManager]]]
               = None) -> Timings:
    """Time ``steps[name](k)`` (``k``: the variant's step count so far, the
    same sequence for every variant) in ``warmup`` untimed steps per variant,
    then ``rounds`` rounds of one block of ``iters`` steps per variant, in
    an order rotated by one each round. ``contexts[name]()`` is entered
    around each of that variant's blocks, outside the clock."""
    names = list(steps)
    contexts = contexts or {}
    done = dict.fromkeys(names, 0)

    def block(name: str, n: int) -> float:
        with contexts.get(name, nullcontext)():
            start = clock()
            for _ in range(n):
                steps[name](done[name])
                done[name] += 1
            return (clock() - start) / n

    for name in names:
        if warmup:
            block(name, warmup)
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(block(name, iters))
    return Timings(times)


def time_steps(steps: Mapping[str, Callable[[int], object]],
               args: argparse.Namespace,
               contexts: Optional[Mapping[str, Callable[[], ContextManager]]]
               = None) -> Timings:
    """:func:`interleave` with the rounds, steps, warm-up and clock of
    :func:`parse_args`' args."""
    return interleave(steps, rounds=args.rounds, iters=args.iters,
                      warmup=args.warmup,
                      clock=make_clock(args.clock, args.device),
                      contexts=contexts)


def ratio_table(columns: Mapping[str, Timings], baseline: str,
                targets: Mapping[str, Optional[float]]) -> str:
    """A markdown table: the baseline's median ms/step per column (e.g. per
    detector), then every other variant's ratio to it, marked ``ok`` or
    ``over`` against its target (variants without one: no mark)."""
    first = next(iter(columns.values()))
    lines = ['| variant | ' + ' | '.join(columns) + ' | target |',
             '|---|' + '---|' * len(columns) + '---|',
             f'| {baseline} (ms/step) | ' + ' | '.join(
                 f'{1e3 * t.median(baseline):.1f}' for t in columns.values())
             + ' | |']
    for name in first.times:
        if name == baseline:
            continue
        target = targets.get(name)
        cells = []
        for t in columns.values():
            ratio = t.ratio(name, baseline)
            mark = '' if target is None else (
                ' ok' if ratio <= target else ' over')
            cells.append(f'{ratio:.3f}x{mark}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' | ' + (
            '-' if target is None else f'<= {target:.2f}x') + ' |')
    return '\n'.join(lines)
