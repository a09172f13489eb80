"""tools/analysis_tools/plot_latent_space.py on tiny detectors."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

from _helpers import load_tool, tiny_cfg


def _load(name):
    return load_tool(f'tools/analysis_tools/{name}.py')


@pytest.fixture(scope='module')
def setup(tiny_data, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('latent')
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
    return tmp_path, cfg, cfg_path, labels, model, ckpt


def _run(cfg_path, ckpt, labels, out_dir, *extra):
    return _load('plot_latent_space').main([
        cfg_path, ckpt, '--box-labels', labels, '--out', str(out_dir),
        '--device', 'cpu', *extra])


def test_shared_space_of_a_matl_model(setup):
    tmp_path, cfg, cfg_path, labels, model, ckpt = setup
    out_dir = tmp_path / 'shared'
    out = _run(cfg_path, ckpt, labels, out_dir)
    n = len(out['embeddings'])
    # the shared FC output (tiny fc_out_channels 64), after its ReLU
    assert n >= 8 and out['embeddings'].shape[1] == 64
    assert (out['embeddings'] >= 0).all()
    assert out['tsne'].shape == (n, 2)
    assert set(out['box_labels'].tolist()) <= {0, 1, 2}
    assert out['space'].startswith('bbox_head.shared_fcs.1')
    assert out['space'].endswith('triplet loss (lambda=0.5) on the shared '
                                 'layer')
    for name in ('tsne_by_class.png', 'tsne_by_box_label.png',
                 'embeddings.npz'):
        assert osp.getsize(out_dir / name) > 1000


def test_metric_space_and_plain_baseline(setup):
    tmp_path, cfg, cfg_path, labels, model, ckpt = setup
    out = _run(cfg_path, ckpt, labels, tmp_path / 'metric', '--space',
               'metric')
    assert out['embeddings'].shape[1] == 128
    assert np.allclose(np.linalg.norm(out['embeddings'], axis=1), 1,
                       atol=1e-5)
    assert out['space'].startswith('triplet metric space (shared)')
    # a plain Faster R-CNN: shared space only
    plain_cfg = copy.deepcopy(cfg)
    roi = plain_cfg.model.roi_head
    for key in ('box_clusters', 'num_box_labels', 'embedding',
                'embed_channels', 'loss_triplet'):
        roi.pop(key)
    roi.type = 'StandardRoIHead'
    plain_path = str(tmp_path / 'plain.py')
    plain_cfg.dump(plain_path)
    plain_ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=MODELS.build(plain_cfg.model).state_dict()),
               plain_ckpt)
    out = _run(plain_path, plain_ckpt, labels, tmp_path / 'plain')
    assert out['space'].endswith('no triplet loss')
    with pytest.raises(ValueError, match='--space metric needs a '
                       'TripletRoIHead'):
        _run(plain_path, plain_ckpt, labels, tmp_path / 'plain', '--space',
             'metric')
    # a checkpoint without the branch (plain mmdet's) into the MATL model
    with pytest.raises(RuntimeError, match='missing keys.*triplet_branch'):
        _run(cfg_path, plain_ckpt, labels, tmp_path / 'x')
