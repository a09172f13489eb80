"""Multi-label linear probe of a frozen encoder (Briody & Aygen, Sec. 2.4).

The encoder (mmdet's ResNet, in eval mode, no gradients) maps each image to
its globally pooled last-stage features h; a single linear layer on h is
trained with binary cross-entropy on image-level multi-label targets (class
k is present if the image has a non-ignored box of class k), Adam lr 1e-3,
batch 128, 10 epochs. The metric is mAP = mean over classes of AP_k =
sum_n P_{k,n} (R_{k,n} - R_{k,n-1}) (scikit-learn's
``average_precision_score``). Classes without a positive test image have no
defined AP: they are left out of the mean and reported.

Since the encoder is frozen and the probe sees no augmentation, the features
are computed once and the probe is trained on them.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.dataset import pseudo_collate
from mmengine.runner.checkpoint import _load_checkpoint
from sklearn.metrics import average_precision_score
from torch import Tensor, nn
from torch.utils.data import DataLoader


def multilabel_targets(dataset) -> np.ndarray:
    """(N, C) 0/1 matrix: image i has a non-ignored box of class c."""
    num_classes = len(dataset.metainfo['classes'])
    targets = np.zeros((len(dataset), num_classes), dtype=np.float32)
    for i in range(len(dataset)):
        for inst in dataset.get_data_info(i).get('instances', []):
            if not inst.get('ignore_flag', 0):
                targets[i, inst['bbox_label']] = 1
    return targets


def multilabel_map(scores: np.ndarray,
                   targets: np.ndarray) -> Tuple[float, np.ndarray]:
    """mAP over the classes that have at least one positive.

    Args:
        scores: (N, C) scores (logits or probabilities).
        targets: (N, C) 0/1 labels.

    Returns:
        ``(map, ap)``: the mean AP and the (C, ) per-class AP, NaN for the
        classes without positives (excluded from the mean; NaN mAP if no
        class has a positive).
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f'scores and targets must both be (N, C), got '
                         f'{scores.shape} and {targets.shape}')
    ap = np.full(targets.shape[1], np.nan)
    for k in range(targets.shape[1]):
        if targets[:, k].any():
            ap[k] = average_precision_score(targets[:, k], scores[:, k])
    valid = ~np.isnan(ap)
    return (float(ap[valid].mean()) if valid.any() else float('nan')), ap


def build_encoder(depth: int = 50,
                  checkpoint: Optional[str] = None,
                  base_channels: int = 64) -> nn.Module:
    """mmdet's ResNet (last stage only), random or loaded from
    ``checkpoint``: a SimCLR/detector checkpoint (keys ``backbone.*``), a
    backbone-only file, or a torchvision-format ResNet (``fc.*`` ignored)."""
    encoder = MODELS.build(dict(type='ResNet', depth=depth,
                                base_channels=base_channels,
                                out_indices=(3, ), norm_eval=False))
    if checkpoint is None:
        encoder.init_weights()
        return encoder
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    missing, _ = encoder.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f'{checkpoint} does not fit a ResNet-{depth} with '
                         f'base_channels={base_channels}: missing '
                         f'{missing[:5]}... ({len(missing)} keys)')
    return encoder


def probe_dataset_cfg(cfg: dict, img_size: int) -> dict:
    """A copy of a dataset config that loads whole images resized to
    ``img_size`` square (repeat wrappers removed: each image once)."""
    cfg = copy.deepcopy(cfg)
    while cfg.get('type') in ('RepeatDataset', 'ClassBalancedDataset'):
        cfg = cfg['dataset']
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
        dict(type='PackDetInputs', meta_keys=('img_path', )),
    ]
    stack = [cfg]
    while stack:
        node = stack.pop()
        if 'pipeline' in node:
            node['pipeline'] = pipeline
        stack += [node['dataset']] if 'dataset' in node else []
        stack += list(node.get('datasets', []))
    return cfg


@torch.no_grad()
def extract_features(encoder: nn.Module, dataset, preprocessor: nn.Module,
                     batch_size: int = 64, num_workers: int = 0) -> Tensor:
    """(N, C_last) pooled features of every image, encoder in eval mode."""
    encoder.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=pseudo_collate)
    feats = []
    for batch in loader:
        inputs = preprocessor(batch, False)['inputs']
        feats.append(encoder(inputs)[-1].mean(dim=(2, 3)))
    return torch.cat(feats)


def train_linear_probe(feats: Tensor, targets: Tensor, epochs: int = 10,
                       lr: float = 1e-3, batch_size: int = 128,
                       seed: int = 0) -> nn.Linear:
    """A linear layer trained with BCE (Adam) on fixed features."""
    gen = torch.Generator().manual_seed(seed)
    probe = nn.Linear(feats.shape[1], targets.shape[1])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        probe.reset_parameters()
    optim = torch.optim.Adam(probe.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        for idx in torch.randperm(len(feats), generator=gen).split(batch_size):
            optim.zero_grad()
            loss_fn(probe(feats[idx]), targets[idx]).backward()
            optim.step()
    return probe


def run_probe(encoders: Dict[str, Optional[str]],
              train_dataset_cfg: dict,
              test_dataset_cfg: dict,
              preprocessor_cfg: dict,
              depth: int = 50,
              base_channels: int = 64,
              img_size: int = 224,
              epochs: int = 10,
              lr: float = 1e-3,
              batch_size: int = 128,
              num_workers: int = 0,
              seed: int = 0) -> List[dict]:
    """Probe each encoder (name -> checkpoint or None for random init) on
    the same data; returns one dict per encoder with ``map``, ``ap``,
    ``scores`` and ``targets`` of the test set."""
    train_set = DATASETS.build(probe_dataset_cfg(train_dataset_cfg, img_size))
    test_set = DATASETS.build(probe_dataset_cfg(test_dataset_cfg, img_size))
    y_train = torch.from_numpy(multilabel_targets(train_set))
    y_test = multilabel_targets(test_set)
    preprocessor = MODELS.build(preprocessor_cfg)
    results = []
    for name, checkpoint in encoders.items():
        torch.manual_seed(seed)  # the same random init for 'random'
        encoder = build_encoder(depth, checkpoint, base_channels)
        f_train = extract_features(encoder, train_set, preprocessor,
                                   num_workers=num_workers)
        f_test = extract_features(encoder, test_set, preprocessor,
                                  num_workers=num_workers)
        probe = train_linear_probe(f_train, y_train, epochs, lr, batch_size,
                                   seed)
        with torch.no_grad():
            scores = probe(f_test).numpy()
        mean_ap, ap = multilabel_map(scores, y_test)
        results.append(dict(name=name, checkpoint=checkpoint, map=mean_ap,
                            ap=ap, scores=scores, targets=y_test,
                            classes=tuple(test_set.metainfo['classes']),
                            num_train=len(train_set),
                            num_test=len(test_set)))
    return results


def format_table(results: Sequence[dict], classes: Sequence[str]) -> str:
    """The comparison table printed by tools/analysis_tools/linear_probe.py."""
    rows = [('encoder', 'mAP', 'classes scored', 'checkpoint')]
    for r in results:
        scored = int((~np.isnan(r['ap'])).sum())
        rows.append((r['name'], f"{r['map']:.4f}", f'{scored}/{len(classes)}',
                     r['checkpoint'] or '(random init)'))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths))
             for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    unscored = [c for c, a in zip(classes, results[0]['ap']) if np.isnan(a)]
    if unscored:
        lines.append(f'classes without a positive test image (no AP, left '
                     f'out of the mean): {", ".join(unscored)}')
    return '\n'.join(lines)
