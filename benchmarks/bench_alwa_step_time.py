"""Training-step time of Faster R-CNN with and without ALWA (interleaved).

One detector (the RPN of ``configs/alwa/faster_rcnn_r50_alwa1_voc.py``, sized
by ``--depth/--width``) trains through ``model.train_step`` in alternating
blocks of ``--iters`` steps: with ALWA (``LossWeightingHook`` attached to
``rpn_head.loss_cls``/``loss_bbox``, its ``before_train_iter`` and
``after_train_iter`` called around each step, as the Runner does) and without
(the hook's forward hooks removed). Rounds alternate which block goes first;
the ratio reported is the median over rounds of ALWA/plain mean step time
(target <= 1.01; the paper calls ALWA's training cost negligible). ALWA's cost
per step: one multiply per loss call, one scalar device-to-host copy and a
few Python operations in ``after_train_iter``.

    python benchmarks/bench_alwa_step_time.py --width 16 --rounds 6  # tiny
    python benchmarks/bench_alwa_step_time.py --depth 50 --width 64 \
        --img-size 1000 600 --batch-size 2 --rounds 10 --iters 20  # VOC size
"""
import contextlib
import sys
from types import SimpleNamespace

import torch
from mmdet.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

from common import (build_detector, describe, make_batches, make_parser,
                    parse_args, ratio_table, time_steps)


def main(argv=None):
    args = parse_args(make_parser(
        __doc__, config='configs/alwa/faster_rcnn_r50_alwa1_voc.py',
        rounds=6, iters=3, warmup=2), argv)
    cfg = Config.fromfile(args.config)
    model = build_detector(cfg.model, args.depth, args.width, args.device, 5)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='OptimWrapper',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)))
    hook_cfg = dict(cfg.default_hooks.alwa)
    # an α update in every block, so the timed steps include updates; ALWA
    # needs interval >= 2 (a one-sample std is undefined)
    hook_cfg['rule'] = dict(hook_cfg['rule'], interval=max(2, args.iters))
    hook = HOOKS.build(hook_cfg)
    # what the hook uses of mmengine's Runner
    runner = SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0,
                             message_hub=MessageHub.get_instance('bench'),
                             logger=MMLogger.get_instance('bench'))
    batches = make_batches(args.img_size, args.batch_size, args.iters, 5,
                           args.boxes)

    def step(k, alwa=False):
        if alwa:
            hook.before_train_iter(runner, k)
        log_vars = model.train_step(batches[k % len(batches)], wrapper)
        # what mmengine's RuntimeInfoHook does every iteration
        {key: v.item() for key, v in log_vars.items()}
        if alwa:
            hook.after_train_iter(runner, k)
        runner.iter += 1

    @contextlib.contextmanager
    def attached():
        hook.before_run(runner)  # attaches the forward hooks
        yield
        hook.after_run(runner)  # removes them

    timings = time_steps(dict(plain=step, alwa=lambda k: step(k, alwa=True)),
                         args, contexts=dict(alwa=attached))
    print(f'{describe(args, "Faster R-CNN")}; {hook.rule!r}')
    print(ratio_table({'step time': timings}, 'plain', dict(alwa=1.01)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
