"""tools/analysis_tools/plot_latent_space.py on a tiny MATL detector."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

from _helpers import REPO_ROOT, tiny_cfg


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO_ROOT, f'tools/analysis_tools/{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_plot_latent_space(tiny_data, tmp_path):
    cfg = tiny_cfg('configs/matl/faster_rcnn_r50_matl_voc.py', str(tmp_path),
                   tiny_data)
    labels = str(tmp_path / 'labels.json')
    cfg.model.roi_head.box_clusters = labels
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    _load('cluster_boxes').main([cfg_path, '--out', labels, '--k', '3',
                                 '--k-range', '2', '3'])
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    out_dir = tmp_path / 'latent'
    out = _load('plot_latent_space').main([
        cfg_path, ckpt, '--box-labels', labels, '--out', str(out_dir),
        '--device', 'cpu'])
    n = len(out['embeddings'])
    assert n >= 8 and out['tsne'].shape == (n, 2)
    assert set(out['box_labels'].tolist()) <= {0, 1, 2}
    assert np.allclose(np.linalg.norm(out['embeddings'], axis=1), 1,
                       atol=1e-5)
    for name in ('tsne_by_class.png', 'tsne_by_box_label.png',
                 'embeddings.npz'):
        assert osp.getsize(out_dir / name) > 1000
    # a checkpoint without the branch (e.g. plain mmdet's) is refused
    plain = {k: v for k, v in model.state_dict().items()}  # no metadata
    torch.save(dict(state_dict=plain), ckpt)
    with pytest.raises(RuntimeError, match='missing keys.*triplet_branch'):
        _load('plot_latent_space').main([
            cfg_path, ckpt, '--box-labels', labels, '--out', str(out_dir)])
