"""The MATL head's stashed branch weights (``state_dict._metadata``) are CPU
copies: mmengine's ``weights_to_cpu`` moves only a checkpoint's values, so a
CUDA tensor in the metadata made a GPU-trained checkpoint unloadable on a
machine without CUDA (issue 18). No CUDA here: the tests check that every
tensor anywhere in a saved checkpoint object is a CPU tensor of its own
storage, and that it loads with ``weights_only=True``."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

from _helpers import config_path, _shrink_model
from mmdet.registry import MODELS
from mmdet_alwa.models.roi_heads.triplet_roi_head import META_KEY
from mmdet_alwa.utils import safe_checkpoint_loading

CFG = 'configs/matl/faster_rcnn_r50_cltl_voc.py'  # class labels only


def _model():
    init_default_scope('mmdet')
    cfg = Config.fromfile(config_path(CFG))
    _shrink_model(cfg.model)
    model = MODELS.build(cfg.model)
    assert len(model.roi_head.triplet_branch) > 0
    return model


def _tensors(obj, where='ckpt'):
    """Every tensor in a checkpoint object, with where it is: dict values,
    list items and the ``_metadata`` of state dicts (an OrderedDict
    attribute that torch pickles)."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f'{where}[{key!r}]')
        meta = getattr(obj, '_metadata', None)
        if meta is not None:
            yield from _tensors(dict(meta), f'{where}._metadata')
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f'{where}[{i}]')


def test_stash_is_a_cpu_copy_not_the_parameters():
    model = _model()
    sd = model.state_dict()
    stash = sd._metadata['roi_head'][META_KEY]
    params = dict(model.roi_head.triplet_branch.named_parameters(
        prefix='triplet_branch'))
    assert set(stash) == set(params)
    for key, value in stash.items():
        assert value.device.type == 'cpu' and not value.requires_grad
        assert torch.equal(value, params[key])
        assert value.untyped_storage().data_ptr() != \
            params[key].untyped_storage().data_ptr()
    # training on after the save leaves the saved copy as it was
    saved = stash['triplet_branch.0.weight'].clone()
    with torch.no_grad():
        params['triplet_branch.0.weight'].add_(1.)
    assert torch.equal(stash['triplet_branch.0.weight'], saved)


def test_meta_device_model_keeps_a_meta_stash():
    """A model not materialised yet (``meta``) has no data to copy."""
    model = _model().to('meta')
    stash = model.state_dict()._metadata['roi_head'][META_KEY]
    assert all(v.is_meta for v in stash.values())


def test_checkpoint_is_cpu_everywhere_and_loads_weights_only(tmp_path):
    model = _model()
    # what mmengine's CheckpointHook saves (Runner.save_checkpoint)
    ckpt = dict(meta=dict(iter=1),
                state_dict=weights_to_cpu(get_state_dict(model)))
    found = list(_tensors(ckpt))
    stashed = [w for w, _ in found if META_KEY in w]
    assert len(stashed) == 4  # two Linear layers' weight and bias
    assert [w for w, t in found if t.device.type != 'cpu'] == []
    path = str(tmp_path / 'matl.pth')
    torch.save(ckpt, path)
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    with safe_checkpoint_loading():
        assert torch.load(path).keys() == loaded.keys()
    fresh = _model()
    fresh.load_state_dict(loaded['state_dict'], strict=True)
    for (k, a), b in zip(
            model.roi_head.triplet_branch.state_dict().items(),
            fresh.roi_head.triplet_branch.state_dict().values()):
        assert torch.equal(a, b), k
        assert b.device == next(fresh.parameters()).device


def test_load_with_assign_puts_the_branch_where_the_module_is():
    """``load_state_dict(assign=True)`` (no copy) into a materialised
    module: the stash goes to the module's device, as every other value."""
    model = _model()
    sd = model.state_dict()
    fresh = _model()
    fresh.load_state_dict(sd, strict=True, assign=True)
    weight = fresh.roi_head.triplet_branch[0].weight
    assert torch.equal(weight, model.roi_head.triplet_branch[0].weight)
    assert weight.device == fresh.roi_head.bbox_head.fc_cls.weight.device
