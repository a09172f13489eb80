"""MATL's multi-annotation triplet loss as a training-only RoI-head branch.

Zhou et al., "Multi-Task Learning with Multi-Annotation Triplet Loss for
Improved Object Detection" (IGARSS 2025) shape a shared latent space with a
triplet loss on class labels plus one on box-shape labels (K-means clusters of
box width, height, area and squareness). Here the shared representation is the
RoI feature of a two-stage detector, which feeds both the classification and
the box-regression branch of the bbox head.
"""
from collections import OrderedDict
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmdet.utils import InstanceList
from torch import Tensor, nn

from mmdet_alwa.models.utils.box_shape import (box_shape_features,
                                               load_box_clusters,
                                               minmax_normalize,
                                               nearest_centroid)

_BRANCH = 'triplet_branch.'
#: key of the branch's weights in the checkpoint's state-dict metadata
META_KEY = 'mmdet_alwa_triplet_branch'


def _stash_branch(module: nn.Module, state_dict: dict, prefix: str,
                  local_metadata: dict) -> None:
    """State-dict hook: move the branch weights into the metadata."""
    stash = OrderedDict()
    for key in [k for k in state_dict if k.startswith(prefix + _BRANCH)]:
        stash[key[len(prefix):]] = state_dict.pop(key)
    local_metadata[META_KEY] = stash


@MODELS.register_module()
class TripletRoIHead(StandardRoIHead):
    """StandardRoIHead plus an auxiliary MATL triplet loss (training only).

    In training, the RoI features of the positive sampled proposals go through
    a projection MLP (global average pooling, ``Linear-ReLU-Linear``) to
    L2-normalised embeddings ``(P, embed_channels)``. Each is labelled with the
    class of its assigned ground-truth box and with that box's shape label: the
    nearest K-means centroid (from ``box_clusters``, made by
    ``tools/analysis_tools/cluster_boxes.py``) of its min-max normalised
    width, height, area and squareness, measured in the original image's
    pixels (the boxes are divided by the ``scale_factor`` of the resize, as
    the clustering tool reads the annotations). ``loss_triplet`` (a
    ``MultiAnnotationTripletLoss`` submodule, so a balancing hook can find it
    as ``roi_head.loss_triplet``) adds
    ``(1 - lambda) * triplet(class) + lambda * triplet(box)`` to the losses,
    logged with the fractions of positive triplets ``triplet_pos_frac_*``.

    Inference (``predict``) is StandardRoIHead's. The checkpoint of a model
    with this head loads into a plain ``StandardRoIHead`` with no missing or
    unexpected keys: a state-dict hook moves the branch weights out of the
    parameter keys into the state dict's metadata (``_metadata['roi_head']
    [META_KEY]``), which plain mmdet ignores and this head reads back on load,
    so resuming restores the branch.

    Args:
        box_clusters (str, optional): the JSON of ``cluster_boxes.py``; needed
            when ``loss_triplet.box_weight > 0``. Read at the first training
            step, so testing does not need it.
        embed_in_channels (int, optional): channels of the RoI features;
            defaults to ``bbox_roi_extractor.out_channels`` (set it for models
            with a ``shared_head``, whose output is wider).
        embed_hidden_channels (int): hidden width of the MLP. Defaults to 256.
        embed_channels (int): embedding size. Defaults to 128.
        loss_triplet (dict): config of the triplet loss. Defaults to MATL's
            ``box_weight=0.5, margin=0.1, mining='batch_all'``.
        **kwargs: the arguments of ``StandardRoIHead``.
    """

    def __init__(self,
                 box_clusters: Optional[str] = None,
                 embed_in_channels: Optional[int] = None,
                 embed_hidden_channels: int = 256,
                 embed_channels: int = 128,
                 loss_triplet: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not self.with_bbox:
            raise ValueError('TripletRoIHead needs a bbox head')
        self.loss_triplet = MODELS.build(loss_triplet or dict(
            type='MultiAnnotationTripletLoss', box_weight=0.5, margin=0.1,
            mining='batch_all'))
        self.use_box_labels = self.loss_triplet.box_weight > 0
        if self.use_box_labels and not box_clusters:
            raise ValueError('box_clusters (the JSON of tools/analysis_tools/'
                             'cluster_boxes.py) is required when '
                             'loss_triplet.box_weight > 0')
        self.box_clusters = box_clusters
        self._clusters = None  # the JSON as tensors, read when first needed
        self._gt_box_labels = None  # per image, during loss() only
        in_channels = embed_in_channels or self.bbox_roi_extractor.out_channels
        for name, value in (('embed_in_channels', in_channels),
                            ('embed_hidden_channels', embed_hidden_channels),
                            ('embed_channels', embed_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive int, got {value!r}')
        self.triplet_branch = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(in_channels, embed_hidden_channels),
            nn.ReLU(inplace=True),
            nn.Linear(embed_hidden_channels, embed_channels))
        self.register_state_dict_post_hook(_stash_branch)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              *args, **kwargs) -> None:
        # put the stashed branch back where its submodules look for it;
        # checkpoints of plain mmdet leave it missing (a warning)
        for key, value in local_metadata.get(META_KEY, {}).items():
            state_dict.setdefault(prefix + key, value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)

    def embed(self, roi_feats: Tensor) -> Tensor:
        """``(N, C, h, w)`` RoI features -> ``(N, D)`` unit embeddings."""
        return F.normalize(self.triplet_branch(roi_feats), dim=1)

    def gt_embeddings(self, x: Tuple[Tensor],
                      batch_data_samples: SampleList) -> Tensor:
        """Embeddings of the RoIs of the ground-truth boxes, image by image."""
        rois = bbox2roi([get_box_tensor(s.gt_instances.bboxes)
                         for s in batch_data_samples])
        feats = self.bbox_roi_extractor(
            x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            feats = self.shared_head(feats)
        return self.embed(feats)

    def box_labels(self, boxes: Tensor, scale_factor=(1.0, 1.0)) -> Tensor:
        """Box-shape labels ``(N,)`` of ``(N, 4)`` boxes of a resized image."""
        if self._clusters is None or \
                self._clusters['centroids'].device != boxes.device:
            self._clusters = {
                k: v.to(boxes.device)
                for k, v in load_box_clusters(self.box_clusters).items()
            }
        c = self._clusters
        sw, sh = scale_factor
        boxes = boxes / boxes.new_tensor([sw, sh, sw, sh])
        feats = minmax_normalize(box_shape_features(boxes), c['low'],
                                 c['high'])
        return nearest_centroid(feats, c['centroids'])

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        # Sampling results keep only the indices of the assigned gt boxes,
        # so bbox_loss reads the per-gt box labels computed here.
        self._gt_box_labels = None
        if self.use_box_labels:
            self._gt_box_labels = [
                self.box_labels(
                    get_box_tensor(s.gt_instances.bboxes),
                    s.metainfo.get('scale_factor', (1.0, 1.0)))
                for s in batch_data_samples
            ]
        try:
            return super().loss(x, rpn_results_list, batch_data_samples)
        finally:
            self._gt_box_labels = None

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List) -> dict:
        bbox_results = super().bbox_loss(x, sampling_results)
        # the RoIs of each image are its positives, then its negatives
        pos = torch.cat([
            torch.arange(len(r.priors), device=r.pos_priors.device) <
            len(r.pos_priors) for r in sampling_results
        ])
        # the branch runs even on zero positives so that DDP sees its grads
        emb = self.embed(bbox_results['bbox_feats'][pos])
        cls_labels = torch.cat([r.pos_gt_labels for r in sampling_results])
        box_labels = None
        if self._gt_box_labels is not None:
            box_labels = torch.cat([
                labels[r.pos_assigned_gt_inds.long()]
                for labels, r in zip(self._gt_box_labels, sampling_results)
            ])
        losses = bbox_results['loss_bbox']
        losses['loss_triplet'] = self.loss_triplet(emb, cls_labels,
                                                   box_labels)
        for name, frac in self.loss_triplet.last_positive_fraction.items():
            losses[f'triplet_pos_frac_{name}'] = frac
        return bbox_results
