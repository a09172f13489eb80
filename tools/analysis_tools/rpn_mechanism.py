"""What a trained two-stage detector's RPN gives each class (issue 19).

Loads a checkpoint and, over the validation (or training) images, measures
with the model's own components (its anchor generator, the RPN's assigner,
the RoI extractor's ``map_roi_levels``, the RoI head's assigner and sampler,
mmdet's ``bbox_overlaps``):

- ``proposals_per_level``: RPN proposals per image on each FPN level the RoI
  extractor pools them from, for the proposals of testing (``test_cfg.rpn``)
  and of training (``train_cfg.rpn_proposal``);
- ``positive_anchors``: anchors the RPN's assigner (``train_cfg.rpn``) makes
  positive, per anchor level and per gt class, per gt box of the class, and
  the fraction of gt boxes with none (``gts_without``);
- ``objectness_of_positives``: the mean RPN objectness (sigmoid) of those
  positive anchors, per class;
- ``proposal_recall``: per class, the fraction of gt boxes covered by a
  proposal at IoU >= 0.5 (``--iou``), among the proposals the RoI head gets
  (testing and training settings);
- ``roi_positives``: the RoI sampler's positives per class on the training
  proposals (``train_cfg.rcnn``'s assigner and sampler, which also adds the
  gt boxes as proposals), with and without those gt boxes.

``small`` sums the figures over ``--small-classes`` (default: the config's
``demo_data.small_class``). The boxes are those of the model's input (the
resized image), as the heads see them.

Example::

    python tools/analysis_tools/rpn_mechanism.py \\
        work_dirs/small_demo/alwa1/seed0/config.py \\
        work_dirs/small_demo/alwa1/seed0/epoch_12.pth --out alwa1_s0.json
"""
import argparse
import json
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from mmengine.config import Config, DictAction  # noqa: E402


def proposal_levels(roi_extractor, bboxes: torch.Tensor) -> torch.Tensor:
    """The FPN level the RoI extractor pools each box (x1, y1, x2, y2)
    from: its own ``map_roi_levels``."""
    from mmdet.structures.bbox import bbox2roi
    num_levels = len(roi_extractor.featmap_strides)
    return roi_extractor.map_roi_levels(bbox2roi([bboxes]), num_levels)


def covered(gt_bboxes: torch.Tensor, proposals: torch.Tensor,
            iou_thr: float) -> torch.Tensor:
    """Whether each gt box has a proposal at IoU >= ``iou_thr``."""
    from mmdet.structures.bbox import bbox_overlaps
    if len(gt_bboxes) == 0:
        return torch.zeros(0, dtype=torch.bool)
    if len(proposals) == 0:
        return torch.zeros(len(gt_bboxes), dtype=torch.bool)
    return bbox_overlaps(gt_bboxes, proposals).max(dim=1).values >= iou_thr


def anchor_positives(rpn_head, featmap_sizes: Sequence, gt_instances,
                     cls_scores: Optional[List[torch.Tensor]] = None,
                     gt_ignore=None) -> dict:
    """One image: the anchors the RPN's assigner makes positive, as
    ``level`` (anchor level of each positive), ``gt_label`` (class of the
    gt it is assigned to), ``gt_num_pos`` (positives of each gt box, of
    class ``gt_labels``) and, with the RPN's ``cls_scores`` (one image's,
    each ``(A, H, W)``), ``objectness`` (sigmoid)."""
    from mmengine.structures import InstanceData
    if getattr(rpn_head, 'assigner', None) is None:
        raise ValueError('rpn_mechanism: the RPN head has no assigner; the '
                         'model needs its train_cfg.rpn (build it from the '
                         'training config)')
    device = gt_instances.bboxes.device
    priors = rpn_head.prior_generator.grid_priors(featmap_sizes,
                                                  device=device)
    levels = torch.cat([torch.full((len(p), ), i, dtype=torch.long,
                                   device=device)
                        for i, p in enumerate(priors)])
    assign = rpn_head.assigner.assign(
        InstanceData(priors=torch.cat(priors)), gt_instances, gt_ignore)
    pos = assign.gt_inds > 0
    out = dict(level=levels[pos],
               gt_label=gt_instances.labels[assign.gt_inds[pos] - 1],
               gt_num_pos=torch.bincount(assign.gt_inds[pos] - 1,
                                         minlength=len(gt_instances)),
               gt_labels=gt_instances.labels)
    if cls_scores is not None:
        flat = torch.cat([s.permute(1, 2, 0).reshape(-1) for s in cls_scores])
        out['objectness'] = flat[pos].sigmoid()
    return out


def roi_positives(roi_head, proposals: torch.Tensor, gt_instances,
                  gt_ignore=None) -> dict:
    """One image: the RoI sampler's positives (its ``train_cfg.rcnn``
    assigner and sampler on ``proposals``), as ``gt_label`` of each positive
    and ``is_gt`` (a gt box the sampler added as a proposal)."""
    from mmengine.structures import InstanceData
    if getattr(roi_head, 'bbox_assigner', None) is None:
        raise ValueError('rpn_mechanism: the RoI head has no bbox_assigner; '
                         'the model needs its train_cfg.rcnn')
    pred = InstanceData(priors=proposals)
    assign = roi_head.bbox_assigner.assign(pred, gt_instances, gt_ignore)
    sampled = roi_head.bbox_sampler.sample(assign, pred, gt_instances)
    return dict(gt_label=sampled.pos_gt_labels,
                is_gt=sampled.pos_is_gt.bool())


class Tally:
    """Sums over images; :meth:`report` gives the JSON figures."""

    def __init__(self, classes: Sequence[str], num_levels: int,
                 num_anchor_levels: int, small: Sequence[str]):
        self.classes = list(classes)
        self.small = [self.classes.index(c) for c in small]
        self.num_levels = num_levels
        self.num_anchor_levels = num_anchor_levels
        k = len(self.classes)
        self.images = 0
        self.num_gts = np.zeros(k, int)
        self.proposals = {m: np.zeros(num_levels, int)
                          for m in ('test', 'train')}
        self.covered = {m: np.zeros(k, int) for m in ('test', 'train')}
        self.pos_anchors = np.zeros((k, num_anchor_levels), int)
        self.no_pos_anchor = np.zeros(k, int)
        self.objectness = np.zeros(k)
        self.roi_pos = np.zeros(k, int)
        self.roi_pos_gt = np.zeros(k, int)

    def add_proposals(self, mode: str, levels: torch.Tensor,
                      gt_labels: torch.Tensor, is_covered: torch.Tensor):
        self.proposals[mode] += np.bincount(levels.cpu().numpy(),
                                            minlength=self.num_levels)
        self.covered[mode] += np.bincount(
            gt_labels[is_covered].cpu().numpy(), minlength=len(self.classes))

    def add_gts(self, gt_labels: torch.Tensor):
        self.images += 1
        self.num_gts += np.bincount(gt_labels.cpu().numpy(),
                                    minlength=len(self.classes))

    def add_anchors(self, pos: dict):
        if 'gt_num_pos' in pos:
            none = (pos['gt_num_pos'] == 0).cpu().numpy()
            self.no_pos_anchor += np.bincount(
                pos['gt_labels'].cpu().numpy()[none],
                minlength=len(self.classes))
        np.add.at(self.pos_anchors, (pos['gt_label'].cpu().numpy(),
                                     pos['level'].cpu().numpy()), 1)
        if 'objectness' in pos:
            np.add.at(self.objectness, pos['gt_label'].cpu().numpy(),
                      pos['objectness'].detach().cpu().double().numpy())

    def add_roi(self, pos: dict):
        labels = pos['gt_label'].cpu().numpy()
        gt = pos['is_gt'].cpu().numpy()
        k = len(self.classes)
        self.roi_pos += np.bincount(labels, minlength=k)
        self.roi_pos_gt += np.bincount(labels[gt], minlength=k)

    def report(self) -> dict:
        def ratio(a, b):
            return float(a) / float(b) if b else None

        def by_class(values):
            return {c: v for c, v in zip(self.classes, values)}

        def small_sum(values):
            return int(sum(values[i] for i in self.small))

        anchors = self.pos_anchors.sum(1)
        rep = dict(
            images=self.images, classes=self.classes,
            small_classes=[self.classes[i] for i in self.small],
            num_gts=by_class(self.num_gts.tolist()),
            proposals_per_level={
                m: [v / max(self.images, 1) for v in p.tolist()]
                for m, p in self.proposals.items()},
            proposal_recall={
                m: by_class([ratio(c, n) for c, n in
                             zip(cov, self.num_gts)])
                for m, cov in self.covered.items()},
            positive_anchors=dict(
                per_level=self.pos_anchors.sum(0).tolist(),
                per_class_level=by_class(self.pos_anchors.tolist()),
                per_gt=by_class([ratio(a, n) for a, n in
                                 zip(anchors, self.num_gts)]),
                gts_without=by_class([ratio(a, n) for a, n in
                                      zip(self.no_pos_anchor,
                                          self.num_gts)])),
            objectness_of_positives=by_class(
                [ratio(o, a) for o, a in zip(self.objectness, anchors)]),
            roi_positives=dict(
                per_class=by_class(self.roi_pos.tolist()),
                per_class_without_gt=by_class(
                    (self.roi_pos - self.roi_pos_gt).tolist()),
                per_gt_without_gt=by_class(
                    [ratio(p - g, n) for p, g, n in
                     zip(self.roi_pos, self.roi_pos_gt, self.num_gts)])))
        if self.small:
            n = small_sum(self.num_gts)
            rep['small'] = dict(
                num_gts=n,
                proposal_recall={m: ratio(small_sum(c), n)
                                 for m, c in self.covered.items()},
                positive_anchors_per_gt=ratio(small_sum(anchors), n),
                gts_without_positive_anchor=ratio(
                    small_sum(self.no_pos_anchor), n),
                objectness_of_positives=ratio(
                    sum(self.objectness[i] for i in self.small),
                    small_sum(anchors)),
                roi_positives_per_gt_without_gt=ratio(
                    small_sum(self.roi_pos - self.roi_pos_gt), n))
        return rep


@torch.no_grad()
def measure(model, dataloader, small: Sequence[str], iou_thr: float = 0.5,
            max_images: Optional[int] = None, seed: int = 0) -> dict:
    """Run the measurements of the module docstring over ``dataloader``."""
    rpn_head, roi_head = model.rpn_head, model.roi_head
    proposal_cfg = model.train_cfg.get('rpn_proposal') if model.train_cfg \
        else None
    if proposal_cfg is None:
        raise ValueError('rpn_mechanism: the model needs train_cfg.'
                         'rpn_proposal (the proposals of training)')
    classes = dataloader.dataset.metainfo['classes']
    unknown = [c for c in small if c not in classes]
    if unknown:
        raise ValueError(f'rpn_mechanism: small classes {unknown} are not '
                         f'classes of the dataset {list(classes)}')
    extractor = roi_head.bbox_roi_extractor
    tally = Tally(classes, len(extractor.featmap_strides),
                  rpn_head.prior_generator.num_levels, small)
    torch.manual_seed(seed)  # the RoI sampler draws its negatives
    model.eval()
    for batch in dataloader:
        data = model.data_preprocessor(batch, False)
        samples = data['data_samples']
        feats = model.extract_feat(data['inputs'])
        cls_scores, bbox_preds = rpn_head(feats)
        metas = [s.metainfo for s in samples]
        props = {
            'test': rpn_head.predict_by_feat(
                cls_scores, bbox_preds, batch_img_metas=metas,
                cfg=rpn_head.test_cfg, rescale=False),
            'train': rpn_head.predict_by_feat(
                cls_scores, bbox_preds, batch_img_metas=metas,
                cfg=proposal_cfg, rescale=False)}
        sizes = [s.shape[-2:] for s in cls_scores]
        for i, sample in enumerate(samples):
            gt = sample.gt_instances
            ignore = sample.get('ignored_instances', None)
            tally.add_gts(gt.labels)
            for mode, results in props.items():
                boxes = results[i].bboxes
                tally.add_proposals(mode, proposal_levels(extractor, boxes),
                                    gt.labels,
                                    covered(gt.bboxes, boxes, iou_thr))
            tally.add_anchors(anchor_positives(
                rpn_head, sizes, gt, [s[i] for s in cls_scores], ignore))
            tally.add_roi(roi_positives(roi_head, props['train'][i].bboxes,
                                        gt, ignore))
            if max_images and tally.images >= max_images:
                return tally.report()
    return tally.report()


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('Example::', 1)[1])
    p.add_argument('config', help='config of the trained two-stage detector')
    p.add_argument('checkpoint', help='its checkpoint')
    p.add_argument('--out', help='write the figures to this JSON file')
    p.add_argument('--split', default='val', choices=['val', 'train'],
                   help='the images (train: with the validation pipeline, '
                   'no flip)')
    p.add_argument('--small-classes', nargs='+',
                   help='classes summed under "small" (default: the '
                   'config\'s demo_data.small_class)')
    p.add_argument('--iou', type=float, default=0.5,
                   help='IoU at which a proposal covers a gt box')
    p.add_argument('--max-images', type=int)
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the RoI sampler\'s draws')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='key=value overrides of the config')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load checkpoints as full pickles (only files you '
                   'trust; same as MMDET_ALWA_UNSAFE_LOAD=1)')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner, load_checkpoint

    import mmdet_alwa  # noqa: F401
    from mmdet_alwa.utils import safe_checkpoint_loading
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    if not (getattr(model, 'with_rpn', False) and
            getattr(model, 'with_roi_head', False)):
        raise ValueError(f'rpn_mechanism: {args.config} is not a two-stage '
                         f'detector with an RPN and a RoI head')
    with safe_checkpoint_loading(unsafe=args.unsafe_load):
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True)
    small = args.small_classes
    if small is None:
        demo = cfg.get('demo_data') or {}
        small = [demo['small_class']] if demo.get('small_class') else []
    dl_cfg = cfg.val_dataloader.copy()
    if args.split == 'train':
        train = cfg.train_dataloader.dataset
        dl_cfg['dataset'] = dict(dl_cfg['dataset'],
                                 ann_file=train.ann_file,
                                 data_prefix=train.data_prefix)
    dl_cfg.update(num_workers=0, persistent_workers=False)
    dataloader = Runner.build_dataloader(dl_cfg)
    report = measure(model, dataloader, small, args.iou, args.max_images,
                     args.seed)
    report.update(config=args.config, checkpoint=args.checkpoint,
                  split=args.split, iou=args.iou)
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    print(text if not args.out else f'wrote {args.out}')
    if not small:
        print('no --small-classes and no demo_data.small_class in the '
              'config: per-class figures only', file=sys.stderr)
    return report


if __name__ == '__main__':
    main()
