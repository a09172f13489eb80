"""t-SNE plots of MATL's RoI embedding space (the paper's Fig. 4).

Runs a detector trained with ``TripletRoIHead`` over a dataset split, embeds
the RoI features of every ground-truth box with the head's projection branch
and draws a 2-D t-SNE (scikit-learn) of the embeddings, coloured once by class
and once by box-shape label (nearest centroid of ``--box-labels``)::

    python tools/analysis_tools/plot_latent_space.py \
        configs/matl/faster_rcnn_r50_matl_voc.py work_dirs/matl/epoch_12.pth \
        --box-labels data/voc_box_labels.json --out work_dirs/matl/latent

Writes ``tsne_by_class.png``, ``tsne_by_box_label.png`` and
``embeddings.npz`` (embeddings, t-SNE coordinates, class and box labels).
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction


def _gt_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The test pipeline with the boxes loaded before the resize, so they are
    in the coordinates of the features (test pipelines load them after)."""
    steps = [dict(t) for t in pipeline if t['type'] != 'LoadAnnotations']
    if not steps or 'LoadImage' not in steps[0]['type']:
        raise ValueError('the test pipeline must start by loading the image')
    steps.insert(1, dict(type='LoadAnnotations', with_bbox=True))
    return steps


def collect_embeddings(model, dataloader, box_clusters: str,
                       max_images: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Embeddings ``(N, D)``, class labels and box labels ``(N,)`` of the gt
    boxes of ``dataloader``'s images."""
    from mmdet.structures.bbox import get_box_tensor
    from mmengine.utils import ProgressBar
    head = model.roi_head
    head.box_clusters, head._clusters = box_clusters, None
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
            emb = head.gt_embeddings(model.extract_feat(data['inputs']),
                                     samples)
            embs.append(emb.cpu())
            for s in samples:
                classes.append(s.gt_instances.labels.cpu())
                boxes.append(head.box_labels(
                    get_box_tensor(s.gt_instances.bboxes),
                    s.metainfo.get('scale_factor', (1.0, 1.0))).cpu())
                bar.update()
            seen += len(samples)
            if max_images is not None and seen >= max_images:
                break
    print()
    return dict(embeddings=torch.cat(embs).numpy(),
                class_labels=torch.cat(classes).numpy(),
                box_labels=torch.cat(boxes).numpy())


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
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap('tab20' if len(names) > 10 else 'tab10')
    for i, name in enumerate(names):
        sel = labels == i
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=6,
                       color=cmap(i % cmap.N), label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize='small', loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='config of the trained MATL detector')
    p.add_argument('checkpoint', help='its checkpoint')
    p.add_argument('--box-labels', required=True,
                   help='JSON of tools/analysis_tools/cluster_boxes.py')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--split', default='val', choices=['val', 'test'])
    p.add_argument('--max-images', type=int,
                   help='stop after this many images')
    p.add_argument('--max-points', type=int, default=5000,
                   help='random subset of the boxes given to t-SNE')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides of the config')
    return p.parse_args(argv)


def main(argv=None) -> Dict[str, np.ndarray]:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner, load_checkpoint

    from mmdet_alwa.models.roi_heads.triplet_roi_head import TripletRoIHead
    from mmdet_alwa.models.utils.box_shape import load_box_clusters
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    if not isinstance(model.roi_head, TripletRoIHead):
        raise ValueError(f'{args.config} has no TripletRoIHead (got '
                         f'{type(model.roi_head).__name__}): nothing to embed')
    # strict: an untrained (missing) branch would make the plot meaningless
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.to(args.device).eval()
    num_box_labels = len(load_box_clusters(args.box_labels)['centroids'])

    dl_cfg = cfg[f'{args.split}_dataloader'].copy()
    dl_cfg['dataset'] = dict(dl_cfg['dataset'],
                             pipeline=_gt_pipeline(dl_cfg['dataset'].pipeline))
    dataloader = Runner.build_dataloader(dl_cfg)
    out = collect_embeddings(model, dataloader, args.box_labels,
                             args.max_images)
    n = len(out['embeddings'])
    if n > args.max_points:
        keep = np.random.default_rng(0).choice(n, args.max_points,
                                               replace=False)
        out = {k: v[keep] for k, v in out.items()}
    out['tsne'] = tsne_2d(out['embeddings'])

    os.makedirs(args.out, exist_ok=True)
    np.savez(osp.join(args.out, 'embeddings.npz'), **out)
    classes = dataloader.dataset.metainfo['classes']
    scatter(out['tsne'], out['class_labels'], classes,
            'RoI embeddings of the ground-truth boxes, by class',
            osp.join(args.out, 'tsne_by_class.png'))
    scatter(out['tsne'], out['box_labels'],
            [f'box label {i}' for i in range(num_box_labels)],
            'RoI embeddings of the ground-truth boxes, by box label',
            osp.join(args.out, 'tsne_by_box_label.png'))
    print(f'{len(out["tsne"])} boxes; wrote tsne_by_class.png, '
          f'tsne_by_box_label.png and embeddings.npz to {args.out}')
    return out


if __name__ == '__main__':
    main()
