"""Box-shape labels for MATL: K-means on the shapes of a dataset's boxes.

Reads the annotations of a split of any mmdet dataset config (no image is
loaded), computes per box its width, height, area and symmetric squareness
``1 - min(w/h, h/w)`` in the annotation's pixels, min-max normalises each
feature over the split (MATL Eq. 2) and runs K-means (scikit-learn). The
number of clusters is either fixed (``--k``; the MATL authors use 3) or picked
by the elbow method over ``--k-range`` (the point of the inertia curve
farthest below the chord joining its ends, i.e. "kneedle").

Writes ``--out`` (JSON, read by ``TripletRoIHead(box_clusters=...)``) and an
elbow plot next to it::

    python tools/analysis_tools/cluster_boxes.py \
        configs/matl/faster_rcnn_r50_matl_voc.py --out data/voc_box_labels.json

Clusters are numbered by increasing mean normalised area. Degenerate boxes
(w or h <= 0) and ignored boxes (VOC "difficult", COCO crowd) are skipped and
counted.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction

from mmdet_alwa.models.utils.box_shape import (FEATURE_NAMES,
                                               box_shape_features,
                                               feature_ranges,
                                               minmax_normalize)

RANDOM_STATE = 42  # the MATL authors' K-means seed


def _leaf_datasets(ds_cfg: dict) -> List[dict]:
    """The annotation-bearing datasets inside Repeat/Concat/... wrappers."""
    if 'datasets' in ds_cfg:
        return [leaf for d in ds_cfg['datasets'] for leaf in _leaf_datasets(d)]
    if 'dataset' in ds_cfg:
        return _leaf_datasets(ds_cfg['dataset'])
    return [ds_cfg]


def collect_boxes(cfg, split: str = 'train') -> Tuple[np.ndarray, Dict]:
    """Read the ``(N, 4)`` xyxy boxes of ``cfg.<split>_dataloader.dataset``.

    Ignored instances are dropped; returns ``(boxes, dict(num_images=...,
    num_ignored=...))``.
    """
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmengine.utils import ProgressBar
    register_all_modules()
    key = f'{split}_dataloader'
    if key not in cfg:
        raise ValueError(f'the config has no {key}')
    boxes, num_images, num_ignored = [], 0, 0
    for leaf in _leaf_datasets(cfg[key]['dataset']):
        leaf = dict(leaf, pipeline=[])  # annotations only, no image loading
        dataset = DATASETS.build(leaf)
        print(f'reading {len(dataset)} images of {leaf["type"]} '
              f'{leaf.get("ann_file", "")}')
        bar = ProgressBar(len(dataset))
        for i in range(len(dataset)):
            for inst in dataset.get_data_info(i)['instances']:
                if inst.get('ignore_flag', 0):
                    num_ignored += 1
                else:
                    boxes.append(inst['bbox'])
            bar.update()
        print()
        num_images += len(dataset)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return arr, dict(num_images=num_images, num_ignored=num_ignored)


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int:
    """The k of maximum distance below the chord of the normalised curve."""
    if len(ks) < 3:
        raise ValueError(f'the elbow method needs >= 3 values of k, got {ks}')
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    x = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    y = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    return int(ks[int(np.argmax((1 - x) - y))])


def cluster_boxes(boxes: np.ndarray,
                  k: Optional[int] = None,
                  k_range: Tuple[int, int] = (2, 10),
                  random_state: int = RANDOM_STATE,
                  n_init: int = 10) -> Dict:
    """Features, normalisation, K-means and (if ``k`` is None) the elbow.

    Returns the JSON-ready result (see the module docstring); the inertia
    curve over ``k_range`` is computed in both modes for the plot.
    """
    from mmengine.utils import ProgressBar
    from sklearn.cluster import KMeans
    lo_k, hi_k = k_range
    if lo_k < 1 or hi_k < lo_k:
        raise ValueError(f'k_range must be 1 <= low <= high, got {k_range}')
    if k is not None and k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    feats = box_shape_features(torch.as_tensor(boxes, dtype=torch.float64))
    usable = (feats[:, 0] > 0) & (feats[:, 1] > 0)
    feats = feats[usable]
    n = feats.size(0)
    need = k if k is not None else lo_k
    if n < need:
        raise ValueError(
            f'only {n} usable boxes ({int((~usable).sum())} degenerate), '
            f'fewer than the {need} clusters asked for')
    low, high = feature_ranges(feats)
    x = minmax_normalize(feats, low, high).numpy()

    ks = list(range(lo_k, min(hi_k, n) + 1))
    inertias, models = [], {}
    print(f'K-means on {n} boxes for k in {ks}')
    bar = ProgressBar(len(ks))
    for kk in ks:
        models[kk] = KMeans(n_clusters=kk, random_state=random_state,
                            n_init=n_init).fit(x)
        inertias.append(float(models[kk].inertia_))
        bar.update()
    print()
    chosen = k if k is not None else elbow_k(ks, inertias)
    model = models.get(chosen) or KMeans(
        n_clusters=chosen, random_state=random_state, n_init=n_init).fit(x)

    # number the clusters by increasing mean normalised area
    order = np.argsort(model.cluster_centers_[:, 2], kind='stable')
    centroids = model.cluster_centers_[order]
    labels = np.argsort(order)[model.labels_]
    raw = feats.numpy()
    clusters = []
    for c in range(chosen):
        members = labels == c
        clusters.append(dict(
            label=c,
            count=int(members.sum()),
            mean_norm_area=float(x[members, 2].mean()),
            mean_norm_squareness=float(x[members, 3].mean()),
            mean=dict(zip(FEATURE_NAMES, raw[members].mean(0).tolist()))))
    return dict(
        features=list(FEATURE_NAMES),
        feature_min=low.tolist(),
        feature_max=high.tolist(),
        k=int(chosen),
        k_selection='fixed' if k is not None else 'elbow',
        centroids=centroids.tolist(),
        clusters=clusters,
        inertia={str(kk): v for kk, v in zip(ks, inertias)},
        num_boxes=int(n),
        num_degenerate=int((~usable).sum()),
        random_state=random_state)


def plot_elbow(result: Dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ks = [int(k) for k in result['inertia']]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, list(result['inertia'].values()), 'o-')
    if str(result['k']) in result['inertia']:
        ax.plot(result['k'], result['inertia'][str(result['k'])], 'r*',
                markersize=14, label=f'k = {result["k"]} '
                f'({result["k_selection"]})')
        ax.legend()
    ax.set_xticks(ks)
    ax.set_xlabel('number of clusters k')
    ax.set_ylabel('within-cluster sum of squares')
    ax.set_title('Elbow method on normalised box shapes')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='mmdet dataset or detector config')
    p.add_argument('--out', required=True, help='JSON file to write')
    p.add_argument('--k', type=int,
                   help='fixed number of clusters (default: the config\'s '
                   'model.roi_head.num_box_labels if set, else the elbow)')
    p.add_argument('--k-range', type=int, nargs=2, default=[2, 10],
                   metavar=('LOW', 'HIGH'),
                   help='k values of the inertia curve, searched for the '
                   'elbow unless --k is given (default 2 10)')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--plot', help='elbow plot PNG (default: OUT_elbow.png)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides of the config')
    return p.parse_args(argv)


def main(argv=None) -> Dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    boxes, stats = collect_boxes(cfg, args.split)
    k_range = (args.k_range[0], args.k_range[1])
    k = args.k
    if k is None:
        k = cfg.get('model', {}).get('roi_head', {}).get('num_box_labels')
        if k is not None:
            print(f'k = {k} from the config (model.roi_head.num_box_labels)')
    result = cluster_boxes(boxes, k=k, k_range=k_range)
    result.update(stats, config=args.config, split=args.split)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    plot = args.plot or osp.splitext(args.out)[0] + '_elbow.png'
    plot_elbow(result, plot)
    print(f'k = {result["k"]} ({result["k_selection"]}); '
          f'{result["num_boxes"]} boxes, {result["num_degenerate"]} degenerate '
          f'and {result["num_ignored"]} ignored skipped\n'
          f'wrote {args.out} and {plot}')
    for c in result['clusters']:
        print(f'  box label {c["label"]}: {c["count"]} boxes, norm. area '
              f'{c["mean_norm_area"]:.3f}, norm. SS '
              f'{c["mean_norm_squareness"]:.3f}')
    return result


if __name__ == '__main__':
    main()
