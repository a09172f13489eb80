"""Compare encoders with Briody & Aygen's multi-label linear probe (Sec. 2.4).

    python tools/analysis_tools/linear_probe.py configs/_base_/faster_rcnn_r50_voc.py \
        --encoder random \
        --encoder imagenet=resnet50-torchvision.pth \
        --encoder simclr=work_dirs/simclr_r50_voc/epoch_10.pth

DATASET_CONFIG is any config with a ``train_dataloader`` and a
``test_dataloader`` (or ``val_dataloader``) over a detection dataset (VOC,
COCO...): image-level targets come from its boxes, by the same rule for
every split (any box of the class, no filter_cfg: see
mmdet_alwa/evaluation/linear_probe.py). Each encoder is frozen, a
linear layer on its pooled features is trained with BCE (Adam 1e-3, 10
epochs, batch 128) on the train images less a held-out validation part
(``--val-fraction``, default 2/9 as in Briody and Aygen's 70/20 split); the epoch
with the best validation mAP is scored by mAP on the test set (Briody and Aygen);
a table compares them.
Images are normalised with the config's ``model.data_preprocessor`` mean/std
if it has one, else with ImageNet's.
"""
import argparse
import json
from typing import Dict, Optional

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdet_alwa  # noqa: F401  (registers our modules)
from mmdet_alwa.compat import register_torchvision_fallback
from mmdet_alwa.evaluation.linear_probe import format_table, run_probe
from mmdet_alwa.utils import safe_checkpoint_loading

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]


def parse_encoders(specs) -> Dict[str, Optional[str]]:
    encoders: Dict[str, Optional[str]] = {}
    for spec in specs:
        if spec == 'random':
            name, path = 'random', None
        elif '=' in spec:
            name, path = spec.split('=', 1)
        else:
            raise ValueError(f"--encoder takes 'random' or NAME=CHECKPOINT, "
                             f'got {spec!r}')
        if not name or name in encoders:
            raise ValueError(f'--encoder names must be unique and non-empty, '
                             f'got {spec!r}')
        encoders[name] = path
    return encoders


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config with train/test dataloaders')
    parser.add_argument('--encoder', action='append', required=True,
                        help="'random' or NAME=CHECKPOINT (repeatable)")
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--base-channels', type=int, default=64)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--val-fraction', type=float, default=2 / 9,
                        help='train images held out to select the epoch by '
                             'validation mAP (0: last epoch, no selection)')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load checkpoints as full pickles, which can '
                        'run any code: only for files you trust (same as '
                        'MMDET_ALWA_UNSAFE_LOAD=1; logged as a warning)')
    args = parser.parse_args(argv)
    encoders = parse_encoders(args.encoder)

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not cfg.get('train_dataloader') or not test_loader:
        raise ValueError(f'{args.config} needs a train_dataloader and a '
                         'test_dataloader or val_dataloader')
    pre = cfg.get('model', {}).get('data_preprocessor') or {}
    preprocessor = dict(type='SimCLRDataPreprocessor',
                        mean=pre.get('mean', IMAGENET_MEAN),
                        std=pre.get('std', IMAGENET_STD),
                        bgr_to_rgb=pre.get('bgr_to_rgb', True))
    register_torchvision_fallback()  # an encoder may be torchvision://NAME
    with safe_checkpoint_loading(unsafe=args.unsafe_load):
        results = run_probe(
            encoders, cfg.train_dataloader.dataset, test_loader.dataset,
            preprocessor, depth=args.depth, base_channels=args.base_channels,
            img_size=args.img_size, epochs=args.epochs, lr=args.lr,
            batch_size=args.batch_size, num_workers=args.num_workers,
            seed=args.seed, val_fraction=args.val_fraction)
    classes = results[0]['classes']
    print(f'linear probe: {results[0]["num_train"]} train / '
          f'{results[0]["num_val"]} validation / {results[0]["num_test"]} '
          f'test images, {len(classes)} classes; test mAP of the epoch '
          f'with the best validation mAP')
    print(format_table(results, classes))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump([dict(name=r['name'], checkpoint=r['checkpoint'],
                            map=r['map'], epoch=r['epoch'],
                            val_map=r['val_map'],
                            ap=[None if np.isnan(a) else a for a in r['ap']])
                       for r in results], f, indent=2)
    return results


if __name__ == '__main__':
    main()
