"""SimCLR (Chen et al., ICML 2020) on the detector's own backbone.

Briody & Aygen ("Simple and Robust Multi-Label Object Detection in
Remote-Sensing Images via Self-Supervised Contrastive Learning"), Sec. 2.3,
after Chen, Kornblith, Norouzi, Hinton (arXiv:2002.05709): two augmented
views of each image go through the encoder f (here mmdet's ``ResNet``, the module the detectors use, followed by
global average pooling of its last stage: h = f(x)), then the projection MLP
g (z = W2 ReLU(W1 h); hidden 2048, output 128 for R50), and the NT-Xent loss
with tau = 0.5 is minimised.

The state dict keys are ``backbone.*`` (f) and ``projector.*`` (g), so any
detector config starts from the pretrained encoder with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=CKPT,
prefix='backbone.')``.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModel, ImgDataPreprocessor
from torch import Tensor, nn

from mmdet_alwa.weighting.validation import check_int


@MODELS.register_module()
class SimCLRDataPreprocessor(ImgDataPreprocessor):
    """Normalise each view with the dataset's mean and std.

    ``data['inputs']`` is a list of views, each a list of (C, H, W) uint8
    tensors (what ``PackMultiViewInputs`` gives after collation), or one list
    of images (a single view, e.g. for feature extraction). Returns
    ``inputs`` as a list of (B, C, H, W) float tensors (one per view) or one
    such tensor.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)) and inputs and \
                isinstance(inputs[0], (list, tuple)):
            views = [
                super(SimCLRDataPreprocessor, self).forward(
                    dict(inputs=view), training)['inputs'] for view in inputs
            ]
            return dict(inputs=views, data_samples=data.get('data_samples'))
        return super().forward(data, training)


@MODELS.register_module()
class SimCLR(BaseModel):
    """SimCLR: encoder + global average pooling + projection MLP + NT-Xent.

    Args:
        backbone (dict): encoder config, e.g. ``dict(type='ResNet',
            depth=50, out_indices=(3, ), norm_eval=False)``; its last output
            is pooled.
        projector_hidden (int): hidden width of g (2048 in Chen et al.).
        projector_out (int): output width of g (128 in Chen et al.).
        loss (dict): the contrastive loss, ``NTXentLoss`` with tau = 0.5.
        data_preprocessor (dict): normalisation (``SimCLRDataPreprocessor``).

    Shapes (mode='loss'): ``inputs`` = [view1, view2], each (B, 3, H, W);
    h: (2B, C_last), z: (2B, projector_out). mode='tensor': ``inputs``
    (B, 3, H, W) -> pooled encoder features h (B, C_last).
    """

    def __init__(self,
                 backbone: dict,
                 projector_hidden: int = 2048,
                 projector_out: int = 128,
                 loss: dict = dict(type='NTXentLoss', temperature=0.5),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        check_int('projector_hidden', projector_hidden)
        check_int('projector_out', projector_out)
        if data_preprocessor is None:
            data_preprocessor = dict(type='SimCLRDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        feat_dim = self._feat_dim()
        self.projector = nn.Sequential(
            nn.Linear(feat_dim, projector_hidden), nn.ReLU(inplace=True),
            nn.Linear(projector_hidden, projector_out))
        self.loss_fn = MODELS.build(loss)

    @torch.no_grad()
    def _feat_dim(self) -> int:
        """Channels of the backbone's last output (any backbone)."""
        was_training = self.backbone.training
        self.backbone.eval()
        out = self.backbone(torch.zeros(1, 3, 64, 64))
        self.backbone.train(was_training)
        return out[-1].shape[1]

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """h = f(x): (B, 3, H, W) -> (B, C_last), pooled last stage."""
        return self.backbone(inputs)[-1].mean(dim=(2, 3))

    def loss(self, views: Sequence[Tensor]) -> Dict[str, Tensor]:
        if len(views) != 2:
            raise ValueError(f'SimCLR needs 2 views, got {len(views)}')
        n = views[0].shape[0]
        # one pass over both views: BN statistics cover the whole 2B batch
        z = self.projector(self.extract_feat(torch.cat(list(views))))
        return dict(loss=self.loss_fn(z[:n], z[n:]))

    def forward(self,
                inputs: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise RuntimeError(
            f'SimCLR has no {mode!r} mode: evaluate the encoder with '
            'tools/analysis_tools/linear_probe.py')
