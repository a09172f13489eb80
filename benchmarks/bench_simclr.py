"""SimCLR speed on CPU: training throughput and NT-Xent against lightly's.

    python benchmarks/bench_simclr.py
    # with lightly's NTXentLoss as the reference (benchmark env only: lightly
    # requires torchvision, which does not install beside this torch):
    pip install --no-deps --target /tmp/lightly_pkg lightly
    PYTHONPATH=/tmp/lightly_pkg python benchmarks/bench_simclr.py

1. Training: images/s of SimCLR train steps (two views, forward, backward,
   Adam) of a ResNet at a small size, and the share of the two-view
   augmentation (per image) and of the NT-Xent loss in a step.
2. NT-Xent: forward + backward time of ours and of lightly's NTXentLoss
   (lightly 1.6, single process, no memory bank), interleaved, same inputs;
   the loss values are checked equal. ratio = ours / lightly (< 1: faster).

Only ``lightly/loss/ntx_ent_loss.py`` and the two modules it imports are
executed (their packages' ``__init__`` and ``lightly.models.utils`` import
torchvision; the SimCLR path does not use them).
"""
import argparse
import importlib
import importlib.util
import os.path as osp
import sys
import types

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import mmdet_alwa  # noqa: F401
from common import interleave
from mmdet.registry import MODELS, TRANSFORMS
from mmdet_alwa.models.losses.ntxent_loss import NTXentLoss


def load_lightly_ntxent():
    """lightly's NTXentLoss class, or None when lightly is not on the path."""
    spec = importlib.util.find_spec('lightly')
    if spec is None:
        return None
    root = spec.submodule_search_locations[0]
    for pkg in ('lightly', 'lightly.loss', 'lightly.utils', 'lightly.models',
                'lightly.models.modules'):
        stub = types.ModuleType(pkg)  # a package without its __init__
        stub.__path__ = [osp.join(root, *pkg.split('.')[1:])]
        sys.modules[pkg] = stub
    # lightly.models.utils imports torchvision; the memory bank (size 0 for
    # SimCLR) only uses it to update a bank, so an empty module stands in
    sys.modules['lightly.models.utils'] = types.ModuleType(
        'lightly.models.utils')
    return importlib.import_module('lightly.loss.ntx_ent_loss').NTXentLoss


def bench_ntxent(batch_sizes, dim, repeats):
    lightly_cls = load_lightly_ntxent()
    if lightly_cls is None:
        print('lightly not found: PYTHONPATH=<dir with lightly> to compare '
              '(see the docstring)')
    print(f'\nNT-Xent forward+backward, D={dim}, tau=0.5, median of '
          f'{repeats}, interleaved')
    print(f'{"batch":>6} {"ours ms":>9} {"lightly ms":>11} {"ratio":>6} '
          f'{"|loss diff|":>12}')
    ours = NTXentLoss(temperature=0.5)
    ref = lightly_cls(temperature=0.5) if lightly_cls else None
    for n in batch_sizes:
        g = torch.Generator().manual_seed(n)
        z1 = torch.randn(n, dim, generator=g, requires_grad=True)
        z2 = torch.randn(n, dim, generator=g, requires_grad=True)
        steps = dict(ours=lambda k: ours(z1, z2).backward())
        if ref is not None:
            steps['lightly'] = lambda k: ref(z1, z2).backward()
        t = interleave(steps, rounds=repeats)
        line = f'{n:>6} {1e3 * t.median("ours"):>9.2f}'
        if ref is not None:
            diff = abs(ours(z1, z2).item() - ref(z1, z2).item())
            line += (f' {1e3 * t.median("lightly"):>11.2f}'
                     f' {t.ratio("ours", "lightly"):>6.2f} {diff:>12.2e}')
        print(line)


def bench_training(depth, width, size, batch, iters):
    init_default_scope('mmdet')
    model = MODELS.build(dict(
        type='SimCLR', projector_hidden=512, projector_out=128,
        backbone=dict(type='ResNet', depth=depth, base_channels=width,
                      out_indices=(3, ), norm_eval=False)))
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-4))
    # two-view augmentation of Briody & Aygen on generated images
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', 'configs',
                                   'simclr', 'simclr_r50_voc.py'))
    views = [dict(t) for t in cfg.view_pipeline]
    views[0]['scale'] = size
    aug = [TRANSFORMS.build(dict(type='MultiView', transforms=views)),
           TRANSFORMS.build(dict(type='PackMultiViewInputs'))]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (2 * size, 2 * size, 3), np.uint8)
              for _ in range(batch)]

    def make_batch():
        items = []
        for img in images:
            r = dict(img=img, img_path='generated', ori_shape=img.shape[:2])
            for t in aug:
                r = t(r)
            items.append(r)
        return pseudo_collate(items)

    data = make_batch()
    model.train()
    with torch.no_grad():
        z = torch.randn(2 * batch, 128)
    t = interleave(dict(
        aug=lambda k: make_batch(),
        step=lambda k: model.train_step(data, optim),
        loss=lambda k: model.loss_fn(z[:batch].requires_grad_(),
                                     z[batch:].requires_grad_()).backward()),
        rounds=iters)
    t_aug, t_step, t_loss = (t.median(n) for n in ('aug', 'step', 'loss'))
    print(f'\nSimCLR training step, ResNet-{depth} (base width {width}), '
          f'{size} px, batch {batch} (x2 views), {torch.get_num_threads()} '
          f'threads, median of {iters}')
    print(f'  train step (fwd+bwd+Adam): {batch / t_step:8.1f} images/s')
    print(f'  two-view augmentation    : {batch / t_aug:8.1f} images/s '
          f'(one process; dataloader workers scale it)')
    print(f'  NT-Xent share of a step  : {t_loss / t_step:8.3f}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=18)
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--loss-batches', type=int, nargs='+',
                        default=[128, 512, 1024])
    parser.add_argument('--loss-repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench_ntxent(args.loss_batches, 128, args.loss_repeats)
    bench_training(args.depth, args.width, args.size, args.batch, args.iters)


if __name__ == '__main__':
    main()
