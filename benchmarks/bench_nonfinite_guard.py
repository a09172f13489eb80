"""Step time of Faster R-CNN with and without the non-finite loss guard.

Two copies of the same detector (same initial weights, same batches, same
random seeds, so the same work and the same weights at every step) train
through ``model.train_step``: one with mmengine's ``OptimWrapper``, one with
``NonFiniteGuardOptimWrapper``. Rounds alternate which goes first; the ratio
reported is the median over rounds of guard/plain mean step time (target
<= 1.01). On a GPU the guard's cost is one scalar device-to-host copy per
step; on a CPU it is a few microseconds.

    python benchmarks/bench_nonfinite_guard.py --width 16 --rounds 10  # tiny
    python benchmarks/bench_nonfinite_guard.py --depth 50 \
        --img-size 1000 600 --batch-size 2 --rounds 10 --iters 20  # VOC size
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import tempfile
import time

import cv2
import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=osp.join(
        REPO, 'configs/_base_/faster_rcnn_r50_voc.py'))
    p.add_argument('--depth', type=int, default=18, choices=(18, 34, 50, 101))
    p.add_argument('--width', type=int, default=64,
                   help='ResNet base channels (64: the real R18/R50); FPN '
                        'and heads get 4x this')
    p.add_argument('--img-size', type=int, nargs=2, default=(160, 120),
                   metavar=('W', 'H'))
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--rounds', type=int, default=6)
    p.add_argument('--iters', type=int, default=3, help='steps per round')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device',
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    return p.parse_args()


def build_model(cfg: Config, depth: int, width: int, num_classes: int,
                device: str):
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(depth=depth, base_channels=width, init_cfg=None)
    expansion = 1 if depth < 50 else 4
    model_cfg.neck.update(
        in_channels=[width * expansion * 2**i for i in range(4)],
        out_channels=4 * width)
    model_cfg.rpn_head.update(in_channels=4 * width, feat_channels=4 * width)
    model_cfg.roi_head.bbox_roi_extractor.out_channels = 4 * width
    model_cfg.roi_head.bbox_head.update(in_channels=4 * width,
                                        num_classes=num_classes)
    return MODELS.build(model_cfg).to(device)


def make_batches(img_size, batch_size: int, num: int):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmdet_alwa.datasets.demo_data import generate_demo_dataset
    w, h = img_size
    with tempfile.TemporaryDirectory() as root:
        generate_demo_dataset(root, num_train=batch_size * num, num_val=1,
                              img_size=(w, h))
        coco = json.load(open(osp.join(root, 'annotations/train.json')))
        batches = []
        for b in range(num):
            inputs, samples = [], []
            for img in coco['images'][b * batch_size:(b + 1) * batch_size]:
                pixels = cv2.imread(osp.join(root, 'train', img['file_name']))
                inputs.append(torch.from_numpy(pixels).permute(2, 0, 1))
                anns = [a for a in coco['annotations']
                        if a['image_id'] == img['id']]
                sample = DetDataSample(metainfo=dict(
                    img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    scale_factor=(1., 1.), img_path=img['file_name']))
                sample.gt_instances = InstanceData(
                    bboxes=torch.tensor([[a['bbox'][0], a['bbox'][1],
                                          a['bbox'][0] + a['bbox'][2],
                                          a['bbox'][1] + a['bbox'][3]]
                                         for a in anns], dtype=torch.float32),
                    labels=torch.tensor([a['category_id'] - 1 for a in anns]))
                samples.append(sample)
            batches.append(dict(inputs=inputs, data_samples=samples))
    return batches


def main():
    args = parse_args()
    import mmdet_alwa  # noqa: F401
    from mmdet.registry import OPTIM_WRAPPERS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    cfg = Config.fromfile(args.config)
    # both copies of one model: neither keeps the original's allocations
    base = build_model(cfg, args.depth, args.width, 5, args.device)
    plain, guarded = copy.deepcopy(base), copy.deepcopy(base)
    del base
    wrappers = {}
    for name, model, wtype in (('plain', plain, 'OptimWrapper'),
                               ('guard', guarded,
                                'NonFiniteGuardOptimWrapper')):
        wrappers[name] = (model, OPTIM_WRAPPERS.build(dict(
            type=wtype, optimizer=torch.optim.SGD(
                model.parameters(), lr=0.01, momentum=0.9))))
    batches = make_batches(args.img_size, args.batch_size, args.iters)

    def run(name, steps, round_idx):
        model, wrapper = wrappers[name]
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            # same samplers' draws for both: identical work and weights
            torch.manual_seed(1000 * round_idx + i)
            log_vars = model.train_step(batches[i % len(batches)], wrapper)
            # what mmengine's RuntimeInfoHook does every iteration
            {k: v.item() for k, v in log_vars.items()}
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    for name in wrappers:
        run(name, args.warmup, -1)
    ratios, times = [], {n: [] for n in wrappers}
    for r in range(args.rounds):
        order = ('plain', 'guard') if r % 2 == 0 else ('guard', 'plain')
        t = {n: run(n, args.iters, r) for n in order}
        for n in wrappers:
            times[n].append(t[n])
        ratios.append(t['guard'] / t['plain'])
    print(f'Faster R-CNN R{args.depth}-FPN (width {args.width}), '
          f'{args.img_size[0]}x'
          f'{args.img_size[1]} px, batch {args.batch_size}, {args.device}, '
          f'{args.rounds} rounds x {args.iters} steps (interleaved)')
    for n in wrappers:
        print(f'  {n:<5} median step time {statistics.median(times[n]):.4f} s')
    ratio = statistics.median(ratios)
    total = sum(times['guard']) / sum(times['plain'])
    print(f'  guard / plain step time: median of rounds {ratio:.4f}, '
          f'ratio of totals {total:.4f} (target <= 1.01: '
          f'{"met" if ratio <= 1.01 else "NOT met"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
