"""MATL's multi-annotation triplet loss as a training-only RoI-head branch.

Zhou et al., "Multi-Task Learning with Multi-Annotation Triplet Loss for
Improved Object Detection", IGARSS 2025, shape "the
embeddings produced by the encoder [that] serve as a shared representation
for multiple task-specific heads" with a triplet loss on class labels plus one
on box-shape labels (K-means clusters of box width, height, area and
squareness). In a two-stage detector the representation that the
classification and the box-regression branch share is the output of the
bbox head's last shared layer (``Shared2FCBBoxHead``: the second shared FC,
after its ReLU), so that is where the triplet losses act by default.
"""
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmdet.utils import InstanceList
from torch import Tensor, nn

from mmdet_alwa.models.utils.box_shape import (assign_box_labels,
                                               load_box_clusters)
from mmdet_alwa.weighting.validation import check_int

_BRANCH = 'triplet_branch.'
#: key of the branch's weights in the checkpoint's state-dict metadata
META_KEY = 'mmdet_alwa_triplet_branch'
#: key of the branch's ``embedding`` in that metadata
EMBED_META_KEY = 'mmdet_alwa_triplet_embedding'
EMBEDDINGS = ('shared', 'roi')


def shared_layer(bbox_head: nn.Module) -> Tuple[str, nn.Module]:
    """``(name, module)`` of the last bbox-head layer that feeds both the
    classification and the regression branch.

    ``ConvFCBBoxHead`` and its subclasses (``Shared2FCBBoxHead``,
    ``Shared4Conv1FCBBoxHead``...): the last shared FC, else the last shared
    conv. Other heads raise ``ValueError``: Double-Head
    (``DoubleConvFCBBoxHead``) classifies with FCs and regresses with convs,
    so its two branches share nothing after RoIAlign; for it (and for heads
    without shared layers) the shared representation *is* the RoI feature,
    which ``embedding='roi'`` uses.
    """
    if isinstance(bbox_head, ConvFCBBoxHead):
        if bbox_head.num_shared_fcs > 0:
            i = bbox_head.num_shared_fcs - 1
            return f'shared_fcs.{i}', bbox_head.shared_fcs[i]
        if bbox_head.num_shared_convs > 0:
            i = bbox_head.num_shared_convs - 1
            return f'shared_convs.{i}', bbox_head.shared_convs[i]
    raise ValueError(
        f'{type(bbox_head).__name__} has no layer shared by its '
        'classification and regression branches (a ConvFCBBoxHead with '
        'num_shared_fcs or num_shared_convs > 0, e.g. Shared2FCBBoxHead, is '
        "needed for embedding='shared'); its branches share only the RoI "
        "features: set roi_head.embedding='roi'")


@contextmanager
def capture_shared(bbox_head: nn.Module) -> Iterator[dict]:
    """While active, ``store['feats']`` holds the ``(N, C)`` shared
    representation of the latest ``bbox_head`` forward, as the cls and reg
    branches see it (the FC output after the head's ReLU; a shared conv's
    output averaged over the RoI bins). Gradients flow back through it."""
    name, layer = shared_layer(bbox_head)
    store = dict(layer=name)
    is_fc = name.startswith('shared_fcs')

    def hook(module, inputs, output):
        # ConvFCBBoxHead applies an in-place ReLU after each shared FC, so
        # the tensor stored here ends up holding relu(output); relu again
        # changes nothing and keeps this correct if that ReLU is not in-place
        store['raw'] = output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
    raw = store.pop('raw', None)
    if raw is not None:
        store['feats'] = F.relu(raw) if is_fc else raw.mean(dim=(2, 3))


def _shared_channels(bbox_head: nn.Module) -> int:
    name, layer = shared_layer(bbox_head)
    return layer.out_features if name.startswith('shared_fcs') \
        else layer.conv.out_channels


def _stash_branch(module: nn.Module, state_dict: dict, prefix: str,
                  local_metadata: dict) -> None:
    """State-dict hook: move the branch weights into the metadata, as CPU
    copies: mmengine's ``weights_to_cpu`` moves a checkpoint's state-dict
    values to the CPU, not its metadata, and a CUDA tensor there would make
    the checkpoint unloadable on a machine without CUDA (and, not copied, it
    would share the parameters' storage)."""
    stash = OrderedDict()
    for key in [k for k in state_dict if k.startswith(prefix + _BRANCH)]:
        value = state_dict.pop(key).detach()
        # a meta tensor (a model not materialised yet) has no data to copy
        stash[key[len(prefix):]] = value if value.is_meta else value.to(
            'cpu', copy=True)
    local_metadata[META_KEY] = stash
    local_metadata[EMBED_META_KEY] = module.embedding


@MODELS.register_module()
class TripletRoIHead(StandardRoIHead):
    """StandardRoIHead plus an auxiliary MATL triplet loss (training only).

    In training, the positive sampled proposals (those the R-CNN assigner
    matched to a ground-truth box) are embedded, projected by the
    ``triplet_branch`` (``Linear-ReLU-Linear``, or nothing when
    ``embed_channels`` is None) and L2-normalised to ``(P, D)``. Where the
    embedding comes from is ``embedding``:

    * ``'shared'`` (default, the paper's setting): the output of the bbox
      head's last shared layer (:func:`shared_layer`; ``Shared2FCBBoxHead``:
      ``shared_fcs.1`` after its ReLU, ``(P, fc_out_channels)``), the
      representation that ``fc_cls`` and ``fc_reg`` both read. The triplet
      gradient reaches ``shared_fcs``, the RoI extractor's inputs (FPN) and
      the backbone.
    * ``'roi'`` (deviation, the head's first version): a side branch on the
      RoIAlign features, average-pooled to ``(P, C)``. Its gradient reaches the
      FPN and the backbone but not ``bbox_head.shared_fcs``, so it does not
      shape the layers that feed the classifier and the regressor; the one
      choice for heads whose branches share nothing after RoIAlign
      (Double-Head).

    Each positive is labelled with the class of its assigned ground-truth box
    and with that box's shape label: the nearest K-means centroid (from
    ``box_clusters``, made by ``tools/analysis_tools/cluster_boxes.py``) of its
    min-max normalised width, height, area and squareness, measured in the
    original image's pixels (the boxes are divided by the ``scale_factor`` of
    the resize, as the clustering tool reads the annotations). Negatives
    (background) take no part. ``loss_triplet`` (a
    ``MultiAnnotationTripletLoss`` submodule, so a balancing hook can find it
    as ``roi_head.loss_triplet``) adds
    ``(1 - lambda) * triplet(class) + lambda * triplet(box)`` to the losses,
    logged with the fractions of positive triplets ``triplet_pos_frac_*``.

    Inference (``predict``) is StandardRoIHead's. The checkpoint of a model
    with this head loads into a plain ``StandardRoIHead`` with no missing or
    unexpected keys: a state-dict hook moves the branch weights out of the
    parameter keys into the state dict's metadata (``_metadata['roi_head']
    [META_KEY]``, with the ``embedding`` under ``EMBED_META_KEY``), which
    plain mmdet ignores and this head reads back on load, so resuming
    restores the branch. Loading a branch trained with the other
    ``embedding`` is a ``ValueError``.

    Args:
        box_clusters (str, optional): the JSON of ``cluster_boxes.py``; needed
            when ``loss_triplet.box_weight > 0``. Read at the first training
            step, so testing does not need it.
        num_box_labels (int, optional): k, the number of box labels that
            ``box_clusters`` must hold (``ValueError`` at the first training
            step otherwise), and the k that ``cluster_boxes.py`` uses for
            this config when ``--k`` is not given. None: any.
        embedding (str): ``'shared'`` or ``'roi'``, see above.
        embed_in_channels (int, optional): input width of the projection;
            defaults to the shared layer's output channels (``'shared'``) or
            ``bbox_roi_extractor.out_channels`` (``'roi'``; set it for models
            with a ``shared_head``, whose output is wider).
        embed_hidden_channels (int): hidden width of the projection.
            Defaults to 256.
        embed_channels (int, optional): embedding size. Defaults to 128.
            None: no projection, the triplet losses act on the L2-normalised
            embedding itself.
        loss_triplet (dict): config of the triplet loss. Defaults to MATL's
            ``box_weight=0.5, margin=0.1, mining='batch_all'``.
        **kwargs: the arguments of ``StandardRoIHead``.
    """

    def __init__(self,
                 box_clusters: Optional[str] = None,
                 num_box_labels: Optional[int] = None,
                 embedding: str = 'shared',
                 embed_in_channels: Optional[int] = None,
                 embed_hidden_channels: int = 256,
                 embed_channels: Optional[int] = 128,
                 loss_triplet: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not self.with_bbox:
            raise ValueError('TripletRoIHead needs a bbox head')
        if embedding not in EMBEDDINGS:
            raise ValueError(f'TripletRoIHead: embedding must be one of '
                             f'{EMBEDDINGS}, got {embedding!r}')
        self.embedding = embedding
        if embedding == 'shared':
            shared_layer(self.bbox_head)  # fail at build time, not in loss
        self.loss_triplet = MODELS.build(loss_triplet or dict(
            type='MultiAnnotationTripletLoss', box_weight=0.5, margin=0.1,
            mining='batch_all'))
        self.use_box_labels = self.loss_triplet.box_weight > 0
        if self.use_box_labels and not box_clusters:
            raise ValueError('box_clusters (the JSON of tools/analysis_tools/'
                             'cluster_boxes.py) is required when '
                             'loss_triplet.box_weight > 0')
        self.box_clusters = box_clusters
        self.num_box_labels = None if num_box_labels is None \
            else check_int('num_box_labels', num_box_labels)
        self._clusters = None  # the JSON as tensors, read when first needed
        self._gt_box_labels = None  # per image, during loss() only
        if embed_in_channels is None:
            embed_in_channels = _shared_channels(self.bbox_head) \
                if embedding == 'shared' \
                else self.bbox_roi_extractor.out_channels
        sizes = dict(embed_in_channels=embed_in_channels,
                     embed_hidden_channels=embed_hidden_channels)
        if embed_channels is not None:
            sizes['embed_channels'] = embed_channels
        for name, value in sizes.items():
            check_int(name, value)
        self.triplet_branch = nn.Sequential() if embed_channels is None \
            else nn.Sequential(
                nn.Linear(embed_in_channels, embed_hidden_channels),
                nn.ReLU(inplace=True),
                nn.Linear(embed_hidden_channels, embed_channels))
        self.register_state_dict_post_hook(_stash_branch)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              *args, **kwargs) -> None:
        # put the stashed branch back where its submodules look for it;
        # checkpoints of plain mmdet leave it missing (a warning)
        stash = local_metadata.get(META_KEY, {})
        trained = local_metadata.get(EMBED_META_KEY)
        if stash and trained != self.embedding:
            raise ValueError(
                f'the checkpoint\'s triplet branch was trained with '
                f'embedding={trained!r}, this TripletRoIHead has '
                f'embedding={self.embedding!r}: set '
                f'model.roi_head.embedding={trained!r}')
        # the stash is on the CPU; back to where the module is (also for
        # load_state_dict(assign=True), which does not copy)
        own = dict(self.triplet_branch.named_parameters(prefix=_BRANCH[:-1]))
        for key, value in stash.items():
            target = own.get(key)
            if target is not None and not target.is_meta:
                value = value.to(target.device)
            state_dict.setdefault(prefix + key, value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)

    def project(self, feats: Tensor) -> Tensor:
        """``(N, C)`` embeddings -> ``(N, D)`` unit vectors of the metric
        space the triplet losses act in."""
        return F.normalize(self.triplet_branch(feats), dim=1)

    def embed(self, bbox_feats: Tensor) -> Tensor:
        """RoI features ``(N, C, h, w)`` -> the ``(N, D)`` unit vectors of the
        triplet losses' metric space, as in training (runs the bbox head for
        ``embedding='shared'``)."""
        if self.embedding == 'shared':
            with capture_shared(self.bbox_head) as store:
                self.bbox_head(bbox_feats)
            return self.project(store['feats'])
        return self.project(bbox_feats.mean(dim=(2, 3)))

    def box_labels(self, boxes: Tensor, scale_factor=(1.0, 1.0)) -> Tensor:
        """Box-shape labels ``(N,)`` of ``(N, 4)`` boxes of a resized image."""
        if self._clusters is None or \
                self._clusters['centroids'].device != boxes.device:
            clusters = load_box_clusters(self.box_clusters)
            k = len(clusters['centroids'])
            if self.num_box_labels is not None and k != self.num_box_labels:
                raise ValueError(
                    f'TripletRoIHead: {self.box_clusters!r} has {k} box '
                    f'labels, num_box_labels is {self.num_box_labels}: '
                    'rerun cluster_boxes.py with --k '
                    f'{self.num_box_labels} or set num_box_labels={k}')
            self._clusters = {k: v.to(boxes.device)
                              for k, v in clusters.items()}
        sw, sh = scale_factor
        return assign_box_labels(boxes / boxes.new_tensor([sw, sh, sw, sh]),
                                 self._clusters)

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
        if self.embedding == 'shared':
            with capture_shared(self.bbox_head) as store:
                bbox_results = super().bbox_loss(x, sampling_results)
            feats = store['feats']
        else:
            bbox_results = super().bbox_loss(x, sampling_results)
            feats = bbox_results['bbox_feats'].mean(dim=(2, 3))
        # the RoIs of each image are its positives, then its negatives
        pos = torch.cat([
            torch.arange(len(r.priors), device=r.pos_priors.device) <
            len(r.pos_priors) for r in sampling_results
        ])
        # projected even on zero positives so that DDP sees its grads
        emb = self.project(feats[pos])
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


def gt_roi_features(roi_head: StandardRoIHead, x: Tuple[Tensor],
                    batch_data_samples: SampleList) -> Tensor:
    """RoI features ``(N, C, h, w)`` of the ground-truth boxes of a batch
    (after the ``shared_head``, if any), in the order of the images."""
    rois = bbox2roi([get_box_tensor(s.gt_instances.bboxes)
                     for s in batch_data_samples])
    feats = roi_head.bbox_roi_extractor(
        x[:roi_head.bbox_roi_extractor.num_inputs], rois)
    if roi_head.with_shared_head:
        feats = roi_head.shared_head(feats)
    return feats
