"""Write the backbone of a checkpoint as a backbone-only weights file.

    python tools/misc/export_backbone.py work_dirs/simclr_r50_voc/epoch_10.pth \
        simclr_r50_backbone.pth

The output holds ``{'state_dict': {<key without 'backbone.'>: tensor},
'meta': {...}}`` with plain tensors only (loads with torch's weights_only),
in the format of torchvision's ResNet files, so a detector config uses it as
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
"""
import argparse
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import torch

from mmengine.runner.checkpoint import _load_checkpoint

from mmdet_alwa.utils import safe_checkpoint_loading


def backbone_state_dict(checkpoint: str,
                        prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """The ``prefix``-ed tensors of a checkpoint, with the prefix removed."""
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    out = {k[len(prefix):]: v.detach().clone()
           for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f'{checkpoint} has no keys starting with {prefix!r}; '
                         f'first keys: {list(state)[:5]}')
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='e.g. a SimCLR or detector .pth')
    parser.add_argument('out', help='the backbone-only file to write')
    parser.add_argument('--prefix', default='backbone.',
                        help='key prefix of the backbone in the checkpoint')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load checkpoints as full pickles, which can '
                        'run any code: only for files you trust (same as '
                        'MMDET_ALWA_UNSAFE_LOAD=1; logged as a warning)')
    args = parser.parse_args(argv)
    with safe_checkpoint_loading(unsafe=args.unsafe_load):
        state = backbone_state_dict(args.checkpoint, args.prefix)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    torch.save(dict(state_dict=state,
                    meta=dict(source=osp.abspath(args.checkpoint),
                              prefix=args.prefix)), args.out)
    print(f'wrote {len(state)} backbone tensors to {args.out}')


if __name__ == '__main__':
    main()
