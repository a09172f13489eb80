"""Training-step time of Faster R-CNN with MATL's TripletRoIHead vs without.

Three detectors are built from the same config: MATL with the triplet losses
on the shared FC output (``embedding='shared'``, the default), MATL on the
side branch over the RoI features (``embedding='roi'``) and a copy whose RoI
head is mmdet's StandardRoIHead, from the same seed, trained on the same
synthetic batches; their steps (``model.train_step``: forward + loss,
backward, optimizer step) are timed in rotating order in one process, so that
machine noise hits all alike. On a CPU the clock is the process's CPU time.
Prints plain mmdet's median step time and the median over rounds of each
MATL variant's ratio to it (target <= 1.05)::

    python benchmarks/bench_matl_step_time.py                    # R50, 800 px
    python benchmarks/bench_matl_step_time.py --tiny --img-size 128 --iters 10
"""
import copy
import json
import os.path as osp
import sys
import tempfile

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from common import (build_detector, describe, make_batches, make_parser,
                    parse_args, ratio_table, time_steps)
from mmdet_alwa.models.utils.box_shape import FEATURE_NAMES


def main(argv=None):
    p = make_parser(__doc__, config='configs/matl/faster_rcnn_r50_matl_voc.py',
                    depth=50, img_size=(800, ), boxes=8, rounds=None,
                    iters=20, warmup=3, clock='auto',
                    iters_help='timed steps each')
    p.add_argument('--tiny', action='store_true',
                   help='--depth 18 --width 16 and 64-channel box-head FCs '
                        '(CPU smoke run)')
    args = parse_args(p, argv)
    if args.tiny:
        args.depth, args.width = 18, 16
    w, h = args.img_size
    model_cfg = Config.fromfile(args.config).model
    if args.tiny:
        model_cfg.roi_head.bbox_head.fc_out_channels = 64
    plain_cfg = copy.deepcopy(model_cfg)
    for key in ('box_clusters', 'num_box_labels', 'embedding',
                'embed_channels', 'loss_triplet'):
        plain_cfg.roi_head.pop(key, None)
    plain_cfg.roi_head.type = 'StandardRoIHead'
    num_classes = model_cfg.roi_head.bbox_head.num_classes
    with tempfile.TemporaryDirectory() as tmp:
        model_cfg.roi_head.box_clusters = osp.join(tmp, 'box_labels.json')
        with open(model_cfg.roi_head.box_clusters, 'w') as f:
            # any 3 clusters: only time matters
            json.dump(dict(features=list(FEATURE_NAMES),
                           feature_min=[1, 1, 1, 0],
                           feature_max=[w, h, w * h, 1],
                           centroids=[[.1, .1, .01, .2], [.5, .2, .1, .7],
                                      [.6, .6, .4, .1]]), f)
        model_cfg.roi_head.num_box_labels = 3
        roi_cfg = copy.deepcopy(model_cfg)
        roi_cfg.roi_head.embedding = 'roi'
        # the head reads the file when first run
        models = {name: build_detector(mcfg, args.depth, args.width,
                                       args.device)
                  for name, mcfg in (('plain', plain_cfg),
                                     ('matl_shared', model_cfg),
                                     ('matl_roi', roi_cfg))}
        batches = make_batches(args.img_size, args.batch_size, args.iters,
                               num_classes, args.boxes)

        def step(model):
            wrapper = OptimWrapper(
                torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9))
            return lambda k: model.train_step(batches[k % len(batches)],
                                              wrapper)

        timings = time_steps(
            {name: step(m) for name, m in models.items()}, args)
    print(describe(args, 'Faster R-CNN'))
    print(ratio_table({'step time': timings}, 'plain',
                      dict(matl_shared=1.05, matl_roi=1.05)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
