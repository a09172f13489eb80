"""t-SNE plots of a detector's RoI embedding space (MATL's Fig. 4).

Zhou et al., "Multi-Task Learning with Multi-Annotation Triplet Loss for
Improved Object Detection", IGARSS 2025, Fig. 4: the
latent space of the shared representation, coloured by class and by box
label. This tool runs a trained two-stage detector over a dataset split,
embeds every ground-truth box and draws a 2-D t-SNE (scikit-learn) of the
embeddings, coloured once by class and once by box-shape label (nearest
centroid of ``--box-labels``). ``--space``:

* ``shared`` (default): the output of the bbox head's last shared layer
  (``Shared2FCBBoxHead``: ``shared_fcs.1``), the representation its
  classifier and regressor both read. Works for any detector whose bbox head
  has one, MATL or not (so the plain baseline can be compared).
* ``metric``: the unit vectors the triplet losses act on (a
  ``TripletRoIHead``'s projection output).

The title names the space and where the model's triplet loss acted::

    python tools/analysis_tools/plot_latent_space.py \\
        configs/matl/faster_rcnn_r50_matl_voc.py work_dirs/matl/epoch_12.pth \\
        --box-labels data/voc_box_labels.json --out work_dirs/matl/latent

Writes ``tsne_by_class.png``, ``tsne_by_box_label.png`` and
``embeddings.npz`` (embeddings, t-SNE coordinates, class and box labels).
"""
import argparse
import json
import os
import os.path as osp
import textwrap
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction

SPACES = ('shared', 'metric')


def _gt_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The test pipeline with the boxes loaded before the resize, so they are
    in the coordinates of the features (test pipelines load them after)."""
    steps = [dict(t) for t in pipeline if t['type'] != 'LoadAnnotations']
    if not steps or 'LoadImage' not in steps[0]['type']:
        raise ValueError('the test pipeline must start by loading the image')
    steps.insert(1, dict(type='LoadAnnotations', with_bbox=True))
    return steps


def describe_space(roi_head, space: str) -> str:
    """What the plotted embedding is, for the title."""
    from mmdet_alwa.models.roi_heads.triplet_roi_head import (TripletRoIHead,
                                                              shared_layer)
    if isinstance(roi_head, TripletRoIHead):
        where = {'shared': 'the shared layer', 'roi': 'a side branch over the '
                 'RoI features'}[roi_head.embedding]
        trained = (f'triplet loss (lambda={roi_head.loss_triplet.box_weight})'
                   f' on {where}')
    else:
        trained = 'no triplet loss'
    if space == 'metric':
        return f'triplet metric space ({roi_head.embedding}); {trained}'
    name, _ = shared_layer(roi_head.bbox_head)
    return f'bbox_head.{name} (input of cls and reg); {trained}'


def collect_embeddings(model, dataloader, box_clusters: str,
                       space: str = 'shared',
                       max_images: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Embeddings ``(N, D)``, class labels and box labels ``(N,)`` of the gt
    boxes of ``dataloader``'s images."""
    from mmdet.structures.bbox import get_box_tensor
    from mmengine.utils import ProgressBar

    from mmdet_alwa.models.roi_heads.triplet_roi_head import (
        capture_shared, gt_roi_features)
    from mmdet_alwa.models.utils.box_shape import (assign_box_labels,
                                                   load_box_clusters)
    head = model.roi_head
    clusters = load_box_clusters(box_clusters)
    embs, classes, boxes = [], [], []
    total = len(dataloader.dataset)
    if max_images is not None:
        total = min(total, max_images)
    bar = ProgressBar(total)
    seen = 0
    with torch.no_grad():
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            samples = data['data_samples']
            feats = gt_roi_features(head, model.extract_feat(data['inputs']),
                                    samples)
            if space == 'metric':
                emb = head.embed(feats)
            else:
                with capture_shared(head.bbox_head) as store:
                    head.bbox_head(feats)
                emb = store['feats']
            embs.append(emb.cpu())
            for s in samples:
                classes.append(s.gt_instances.labels.cpu())
                sw, sh = s.metainfo.get('scale_factor', (1.0, 1.0))
                gt = get_box_tensor(s.gt_instances.bboxes).cpu()
                boxes.append(assign_box_labels(
                    gt / gt.new_tensor([sw, sh, sw, sh]), clusters))
                bar.update()
            seen += len(samples)
            if max_images is not None and seen >= max_images:
                break
    print()
    return dict(embeddings=torch.cat(embs).numpy(),
                class_labels=torch.cat(classes).numpy(),
                box_labels=torch.cat(boxes).numpy())


def box_label_names(path: str, k: int) -> List[str]:
    """Legend entries with each cluster's mean normalised area and
    squareness (the paper's Table I), when the JSON has them."""
    with open(path) as f:
        clusters = {c['label']: c for c in json.load(f).get('clusters', [])}
    names = []
    for i in range(k):
        c = clusters.get(i)
        names.append(f'box label {i}' if c is None else
                     f'box label {i}: area {c["mean_norm_area"]:.2f}, '
                     f'SS {c["mean_norm_squareness"]:.2f}')
    return names


def tsne_2d(embeddings: np.ndarray, seed: int = 42) -> np.ndarray:
    from sklearn.manifold import TSNE
    n = len(embeddings)
    if n < 3:
        raise ValueError(f't-SNE needs at least 3 ground-truth boxes, got {n}')
    perplexity = float(min(30.0, (n - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init='pca',
                random_state=seed).fit_transform(embeddings)


def scatter(points: np.ndarray, labels: np.ndarray, names: Sequence[str],
            title: str, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5.4))
    cmap = plt.get_cmap('tab20' if len(names) > 10 else 'tab10')
    for i, name in enumerate(names):
        sel = labels == i
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=6,
                       color=cmap(i % cmap.N), label=name)
    ax.set_title('\n'.join(textwrap.wrap(title, 64)), fontsize='small')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize='small', loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='config of the trained detector')
    p.add_argument('checkpoint', help='its checkpoint')
    p.add_argument('--box-labels', required=True,
                   help='JSON of tools/analysis_tools/cluster_boxes.py')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--space', default='shared', choices=SPACES,
                   help='shared: the bbox head\'s shared representation '
                   '(default); metric: the triplet losses\' embedding')
    p.add_argument('--split', default='val', choices=['val', 'test'])
    p.add_argument('--max-images', type=int,
                   help='stop after this many images')
    p.add_argument('--max-points', type=int, default=5000,
                   help='random subset of the boxes given to t-SNE')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides of the config')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load checkpoints as full pickles, which can run any '
                   'code: only for files you trust (same as '
                   'MMDET_ALWA_UNSAFE_LOAD=1; logged as a warning)')
    return p.parse_args(argv)


def main(argv=None) -> Dict[str, np.ndarray]:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner, load_checkpoint

    import mmdet_alwa  # noqa: F401
    from mmdet_alwa.models.roi_heads.triplet_roi_head import (TripletRoIHead,
                                                              shared_layer)
    from mmdet_alwa.models.utils.box_shape import load_box_clusters
    from mmdet_alwa.utils import safe_checkpoint_loading
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    head = getattr(model, 'roi_head', None)
    if args.space == 'metric' and not isinstance(head, TripletRoIHead):
        raise ValueError(f'--space metric needs a TripletRoIHead; {args.config}'
                         f' has {type(head).__name__}: use --space shared')
    if head is None or not getattr(head, 'with_bbox', False):
        raise ValueError(f'{args.config} has no RoI bbox head to embed with')
    shared_layer(head.bbox_head)  # ValueError for heads without one
    # strict: a missing (untrained) part would make the plot meaningless
    with safe_checkpoint_loading(unsafe=args.unsafe_load):
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True)
    model.to(args.device).eval()
    num_box_labels = len(load_box_clusters(args.box_labels)['centroids'])

    dl_cfg = cfg[f'{args.split}_dataloader'].copy()
    dl_cfg['dataset'] = dict(dl_cfg['dataset'],
                             pipeline=_gt_pipeline(dl_cfg['dataset'].pipeline))
    dataloader = Runner.build_dataloader(dl_cfg)
    out = collect_embeddings(model, dataloader, args.box_labels, args.space,
                             args.max_images)
    n = len(out['embeddings'])
    if n > args.max_points:
        keep = np.random.default_rng(0).choice(n, args.max_points,
                                               replace=False)
        out = {k: v[keep] for k, v in out.items()}
    out['tsne'] = tsne_2d(out['embeddings'])

    os.makedirs(args.out, exist_ok=True)
    np.savez(osp.join(args.out, 'embeddings.npz'), **out)
    space = describe_space(head, args.space)
    classes = dataloader.dataset.metainfo['classes']
    scatter(out['tsne'], out['class_labels'], classes,
            f'by class: {space}', osp.join(args.out, 'tsne_by_class.png'))
    scatter(out['tsne'], out['box_labels'],
            box_label_names(args.box_labels, num_box_labels),
            f'by box label: {space}',
            osp.join(args.out, 'tsne_by_box_label.png'))
    print(f'{len(out["tsne"])} boxes, {space}; wrote tsne_by_class.png, '
          f'tsne_by_box_label.png and embeddings.npz to {args.out}')
    out['space'] = space
    return out


if __name__ == '__main__':
    main()
