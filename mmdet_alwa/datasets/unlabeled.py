"""Unlabeled images for self-supervised pretraining (SimCLR).

``UnlabeledImageDataset`` takes its images either from any mmdet dataset
config (e.g. the detection training set: its images are used, its labels
ignored; wrappers such as ``RepeatDataset`` / ``ConcatDataset`` work and
repeated images are kept once) or from a folder searched recursively.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class UnlabeledImageDataset(BaseDataset):
    """Image paths from a dataset config or a folder; items are
    ``{'img_path': ...}`` passed through ``pipeline``.

    Args:
        dataset (dict, optional): an mmdet dataset config whose images to use.
        img_dir (str, optional): a folder of images (joined to ``data_root``
            when relative). Exactly one of ``dataset`` and ``img_dir``.
        extensions (tuple[str]): file endings counted as images in
            ``img_dir`` (case-insensitive).
        **kwargs: ``pipeline``, ``data_root``, ``indices``... of
            :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=())

    def __init__(self,
                 dataset: Optional[dict] = None,
                 img_dir: Optional[str] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 **kwargs) -> None:
        if (dataset is None) == (img_dir is None):
            raise ValueError('give exactly one of dataset= and img_dir=, got '
                             f'dataset={dataset!r}, img_dir={img_dir!r}')
        self.source_dataset = dataset
        self.img_dir = img_dir
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(**kwargs)

    def _folder_images(self) -> List[str]:
        root = self.img_dir
        if self.data_root and not osp.isabs(root):
            root = osp.join(self.data_root, root)
        if not osp.isdir(root):
            raise FileNotFoundError(f'img_dir {root!r} is not a folder')
        return sorted(
            osp.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.lower().endswith(self.extensions))

    def _dataset_images(self) -> List[str]:
        ds = DATASETS.build(self.source_dataset)
        paths = (ds.get_data_info(i)['img_path'] for i in range(len(ds)))
        return list(dict.fromkeys(paths))  # drop repeats, keep order

    def load_data_list(self) -> List[dict]:
        paths = self._folder_images() if self.img_dir is not None \
            else self._dataset_images()
        if not paths:
            src = self.img_dir if self.img_dir is not None \
                else self.source_dataset
            raise ValueError(f'no images found in {src!r}')
        return [dict(img_path=p) for p in paths]
