"""Multi-label linear probe of a frozen encoder (Briody & Aygen, Sec. 2.4).

L. Briody, G. K. Aygen, "Simple and Robust Multi-Label Object
Detection in Remote-Sensing Images via Self-Supervised Contrastive Learning",
Brown University report (code: github.com/lbriody/simple-multilabel-cl).

The encoder (mmdet's ResNet, in eval mode, no gradients) maps each image to
its globally pooled last-stage features h; a single linear layer on h is
trained with binary cross-entropy on image-level multi-label targets, Adam
lr 1e-3, batch 128, 10 epochs. The metric is mAP = mean over classes of
AP_k = sum_n P_{k,n} (R_{k,n} - R_{k,n-1}) (scikit-learn's
``average_precision_score``). Classes without a positive image have no
defined AP: they are left out of the mean and reported.

Label rule (the same for the train, validation and test images): image i is
positive for class k when its annotation has *any* box of class k that
mmdet's loader parses, whatever its size and whether it is marked difficult
or crowd (the object is in the image). To make that hold, every dataset
config is loaded with ``filter_cfg=None``: no image is dropped (images
without objects are negatives for every class) and no box is turned into an
ignored one by ``bbox_min_size`` (a detector's train split sets 32 px, which
made a 20 px dog "no dog" in training and "dog" in test).

Probe selection (Briody and Aygen, Sec. 2: "evaluating the best iteration of each
model on an unseen test dataset", with a 70/20/10 train/validation/test
partition): a seeded random ``val_fraction`` of the train images (default
2/9, i.e. 20 of Briody and Aygen's 70 + 20) is held out, the probe is scored by
validation mAP after every epoch, and the epoch with the best validation mAP
(the first on ties) is the probe evaluated on the test set. What is reported:
the test mAP and per-class AP of that probe, its epoch, and the validation
mAP of every epoch. ``val_fraction=0`` trains on all train images and takes
the last epoch.

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
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mmdet_alwa.weighting.validation import check_range


def multilabel_targets(dataset) -> np.ndarray:
    """(N, C) 0/1 matrix: image i has a box of class c (the label rule of
    the module docstring: ignored boxes count; load the dataset through
    ``probe_dataset_cfg`` so that no filter changes the boxes)."""
    num_classes = len(dataset.metainfo['classes'])
    targets = np.zeros((len(dataset), num_classes), dtype=np.float32)
    for i in range(len(dataset)):
        for inst in dataset.get_data_info(i).get('instances', []):
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
    try:  # the extra `tools`, not needed to import mmdet_alwa
        from sklearn.metrics import average_precision_score
    except ImportError as e:
        raise ImportError(
            'mmdet_alwa.evaluation.linear_probe needs scikit-learn: '
            'pip install "mmdet_alwa[tools]"') from e
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
    ``img_size`` square, every image once (repeat wrappers removed) and
    without ``filter_cfg`` (the label rule of the module docstring)."""
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
        if 'datasets' not in node and 'dataset' not in node:
            node['filter_cfg'] = None
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


def split_holdout(num: int, fraction: float,
                  seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded random (train, validation) indices; ``fraction`` of ``num``
    (at least one image each when > 0) goes to validation."""
    check_range('val_fraction', fraction, 0, 1, high_inclusive=False)
    perm = np.random.default_rng(seed).permutation(num)
    n_val = 0 if fraction == 0 else int(round(fraction * num))
    n_val = min(max(n_val, int(fraction > 0)), num - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train_linear_probe(feats: Tensor, targets: Tensor, epochs: int = 10,
                       lr: float = 1e-3, batch_size: int = 128,
                       seed: int = 0,
                       val: Optional[Tuple[Tensor, np.ndarray]] = None
                       ) -> Tuple[nn.Linear, dict]:
    """A linear layer trained with BCE (Adam) on fixed features.

    Args:
        feats, targets: (N, D) features and (N, C) 0/1 targets.
        val: (features, targets) of the validation images: the probe of the
            epoch with the best validation mAP is returned (Briody and Aygen).
            None: the probe after the last epoch.

    Returns:
        ``(probe, info)``: ``info['epoch']`` the epoch (1-based) of the
        returned probe, ``info['val_map']`` the validation mAP after each
        epoch (empty without ``val``).
    """
    gen = torch.Generator().manual_seed(seed)
    probe = nn.Linear(feats.shape[1], targets.shape[1])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        probe.reset_parameters()
    optim = torch.optim.Adam(probe.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    best, history = None, []
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(len(feats), generator=gen).split(batch_size):
            optim.zero_grad()
            loss_fn(probe(feats[idx]), targets[idx]).backward()
            optim.step()
        if val is None:
            continue
        with torch.no_grad():
            val_map = multilabel_map(probe(val[0]).numpy(), val[1])[0]
        if np.isnan(val_map):
            raise ValueError('the validation images have no positive label '
                             'of any class: raise val_fraction')
        history.append(val_map)
        if best is None or val_map > best[0]:
            best = (val_map, epoch, copy.deepcopy(probe.state_dict()))
    if best is None:
        return probe, dict(epoch=epochs, val_map=history)
    probe.load_state_dict(best[2])
    return probe, dict(epoch=best[1], val_map=history)


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
              seed: int = 0,
              val_fraction: float = 2 / 9) -> List[dict]:
    """Probe each encoder (name -> checkpoint or None for random init) on
    the same data (the module docstring says what is reported); returns one
    dict per encoder with ``map``, ``ap``, ``scores`` and ``targets`` of
    the test set, ``epoch`` (the selected probe's) and ``val_map`` (per
    epoch)."""
    train_set = DATASETS.build(probe_dataset_cfg(train_dataset_cfg, img_size))
    test_set = DATASETS.build(probe_dataset_cfg(test_dataset_cfg, img_size))
    y_all = multilabel_targets(train_set)
    fit, held = split_holdout(len(train_set), val_fraction, seed)
    y_test = multilabel_targets(test_set)
    preprocessor = MODELS.build(preprocessor_cfg)
    results = []
    for name, checkpoint in encoders.items():
        torch.manual_seed(seed)  # the same random init for 'random'
        encoder = build_encoder(depth, checkpoint, base_channels)
        f_all = extract_features(encoder, train_set, preprocessor,
                                 num_workers=num_workers)
        f_test = extract_features(encoder, test_set, preprocessor,
                                  num_workers=num_workers)
        val = (f_all[held], y_all[held]) if len(held) else None
        probe, info = train_linear_probe(
            f_all[fit], torch.from_numpy(y_all[fit]), epochs, lr,
            batch_size, seed, val=val)
        with torch.no_grad():
            scores = probe(f_test).numpy()
        mean_ap, ap = multilabel_map(scores, y_test)
        results.append(dict(name=name, checkpoint=checkpoint, map=mean_ap,
                            ap=ap, scores=scores, targets=y_test,
                            classes=tuple(test_set.metainfo['classes']),
                            num_train=len(fit), num_val=len(held),
                            num_test=len(test_set), **info))
    return results


def format_table(results: Sequence[dict], classes: Sequence[str]) -> str:
    """The comparison table printed by tools/analysis_tools/linear_probe.py."""
    rows = [('encoder', 'test mAP', 'classes scored', 'epoch', 'val mAP',
             'checkpoint')]
    for r in results:
        scored = int((~np.isnan(r['ap'])).sum())
        val = f"{max(r['val_map']):.4f}" if r['val_map'] else '-'
        rows.append((r['name'], f"{r['map']:.4f}", f'{scored}/{len(classes)}',
                     str(r['epoch']), val,
                     r['checkpoint'] or '(random init)'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(row, widths))
             for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    unscored = [c for c, a in zip(classes, results[0]['ap']) if np.isnan(a)]
    if unscored:
        lines.append(f'classes without a positive test image (no AP, left '
                     f'out of the mean): {", ".join(unscored)}')
    return '\n'.join(lines)
