"""Safe checkpoint loading end to end: a malicious checkpoint does not run
through ``load_from``, ``--resume`` or ``tools/test.py``; a real checkpoint of
our Runner needs nothing beyond the allow-list; ``tools/test.py`` refuses a
checkpoint that is not one of the model."""
import fractions
import os
import os.path as osp
import pickle
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from _helpers import REPO_ROOT, load_tool, tiny_cfg
from mmdet_alwa.utils import safe_checkpoint_loading
from mmdet_alwa.utils.checkpoint_safety import (CHECKPOINT_SAFE_GLOBALS,
                                                TORCH_FORCE_SAFE,
                                                TORCH_FORCE_UNSAFE,
                                                UNSAFE_ENV)

CFG = 'configs/alwa/faster_rcnn_r50_alwa1_voc.py'


class Touch:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


def _own(*argv):
    """In-process tool runs: a visualizer and experiment of their own
    (mmengine reuses instances by name)."""
    run = uuid.uuid4().hex[:8]
    return [*argv, '--cfg-options', f'visualizer.name=vis_{run}',
            f'experiment_name=exp_{run}']


def _tool(name):
    return load_tool(f'tools/{name}.py', f'tool_{name}')


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch):
    for name in (UNSAFE_ENV, TORCH_FORCE_SAFE, TORCH_FORCE_UNSAFE):
        monkeypatch.delenv(name, raising=False)


def _cfg(tiny_data, work_dir, **kw):
    cfg = tiny_cfg(CFG, str(work_dir), tiny_data, **kw)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """A real checkpoint of our Runner (ALWA's LossWeightingHook, the
    NonFiniteGuardOptimWrapper) and its config as a file."""
    work_dir = tmp_path_factory.mktemp('trained')
    cfg = tiny_cfg(CFG, str(work_dir), tiny_data, max_iters=2)
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    Runner.from_cfg(cfg).train()
    cfg_path = str(work_dir / 'tiny.py')
    cfg.dump(cfg_path)
    return cfg_path, str(work_dir / 'iter_2.pth')


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=dict(iter=2), state_dict={}, evil=Touch(marker)),
               path)
    return path, marker


def _allowed_names():
    names = set()
    for g in CHECKPOINT_SAFE_GLOBALS:
        names.add(g[1] if isinstance(g, tuple)
                  else f'{g.__module__}.{g.__qualname__}')
    return names


def test_real_checkpoint_needs_only_the_allow_list(trained):
    _, path = trained
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in needed
    assert needed <= _allowed_names(), needed - _allowed_names()
    reference = torch.load(path, map_location='cpu', weights_only=False)
    with safe_checkpoint_loading():
        ckpt = torch.load(path, map_location='cpu')
    assert ckpt.keys() == reference.keys()
    for key, value in reference['state_dict'].items():
        assert torch.equal(ckpt['state_dict'][key], value), key
    assert ckpt['mmdet_alwa'] == reference['mmdet_alwa']
    for name, buf in reference['message_hub']['log_scalars'].items():
        np.testing.assert_array_equal(
            ckpt['message_hub']['log_scalars'][name].data[0], buf.data[0])


# ------------------------------------------- (a) load_from, resume=True
@pytest.mark.parametrize('resume', [False, True], ids=['load_from', 'resume'])
@pytest.mark.parametrize('ours', [False, True], ids=['plain', 'safe_block'])
def test_runner_load_from_malicious_does_not_run(resume, ours, evil,
                                                  tiny_data, tmp_path):
    path, marker = evil
    cfg = _cfg(tiny_data, tmp_path / 'w', max_iters=1)
    cfg.load_from, cfg.resume = path, resume
    runner = Runner.from_cfg(cfg)
    with pytest.raises(pickle.UnpicklingError):
        if ours:
            with safe_checkpoint_loading():
                runner.train()
        else:  # a user's own script after import mmdet_alwa
            runner.train()
    assert not marker.exists()
    assert runner.iter == 0  # nothing was trained on a refused checkpoint


# ----------------------------------------- (b) tools/train.py --resume
def test_train_resume_from_malicious_last_checkpoint(evil, trained,
                                                     tmp_path, capsys):
    path, marker = evil
    cfg_path, _ = trained
    work_dir = tmp_path / 'resume'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(path)
    with pytest.raises(SystemExit) as exit_:
        _tool('train').main(_own(cfg_path, '--work-dir', str(work_dir),
                                 '--resume'))
    message = str(exit_.value.code)
    assert message.startswith(f'error: resuming from {path}: ')
    assert 'refused by the safe loader' in message
    assert '--unsafe-load' in message
    assert not marker.exists()


# ------------------------------------------------ (c) tools/test.py
def test_test_tool_refuses_malicious_checkpoint(evil, trained, tmp_path):
    """As a user runs it: exit status 1, the checkpoint named, no payload."""
    path, marker = evil
    cfg_path, _ = trained
    env = {k: v for k, v in os.environ.items()
           if k not in (UNSAFE_ENV, TORCH_FORCE_UNSAFE)}
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools/test.py'), cfg_path, path,
         '--work-dir', str(tmp_path / 'w')],
        cwd=str(tmp_path), env=dict(env, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f'error: loading {path}: ' in proc.stderr
    assert 'refused by the safe loader' in proc.stderr
    assert 'coco/bbox_mAP' not in proc.stdout + proc.stderr
    assert not marker.exists()


def _state_size(cfg_path):
    """The model's state_dict entries, counted by building it ourselves."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return len(MODELS.build(Config.fromfile(cfg_path).model).state_dict())


def test_test_tool_refuses_a_checkpoint_of_another_model(trained, tmp_path,
                                                         capsys):
    cfg_path, real = trained
    total = _state_size(cfg_path)
    unrelated = str(tmp_path / 'unrelated.pth')
    torch.save(dict(state_dict={'encoder.layer0.weight': torch.ones(3),
                                'decoder.bias': torch.zeros(2)}), unrelated)
    with pytest.raises(SystemExit) as exit_:
        _tool('test').main(_own(cfg_path, unrelated,
                                '--work-dir', str(tmp_path / 'a')))
    message = str(exit_.value.code)
    assert message.startswith(
        f'error: checkpoint {unrelated} provides 0 of the model\'s {total} '
        f'weights (0%, fewer than --min-weights-matched=0.5)')

    # the detector without its backbone (under half of the entries: the
    # backbone has most BN buffers), then with the threshold lowered
    with safe_checkpoint_loading():
        state = torch.load(real, map_location='cpu')['state_dict']
    heads = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    assert 0 < len(heads) < total / 2
    partial = str(tmp_path / 'heads.pth')
    torch.save(dict(state_dict=heads), partial)
    with pytest.raises(SystemExit, match=f'provides {len(heads)} of the '
                       f'model\'s {total} weights'):
        _tool('test').main(_own(cfg_path, partial,
                                '--work-dir', str(tmp_path / 'b')))
    capsys.readouterr()
    _tool('test').main(_own(cfg_path, partial, '--work-dir',
                            str(tmp_path / 'c'),
                            '--min-weights-matched', '0.1'))
    out = capsys.readouterr()
    assert 'coco/bbox_mAP' in out.out + out.err  # it evaluated


def test_test_tool_accepts_the_real_checkpoint(trained, tmp_path, capsys):
    cfg_path, real = trained
    _tool('test').main(_own(cfg_path, real, '--work-dir',
                            str(tmp_path / 'w')))
    out = capsys.readouterr()
    total = _state_size(cfg_path)
    assert f'provides {total} of the model\'s {total} weights' in \
        out.out + out.err


def test_test_tool_opt_in_loads_a_foreign_global(trained, tmp_path, capsys):
    """A legit checkpoint with a global beyond the allow-list needs
    --unsafe-load, which is logged."""
    cfg_path, real = trained
    with safe_checkpoint_loading():
        ckpt = torch.load(real, map_location='cpu')
    ckpt['meta']['ratio'] = fractions.Fraction(1, 3)
    foreign = str(tmp_path / 'foreign.pth')
    torch.save(ckpt, foreign)
    with pytest.raises(SystemExit, match='fractions.Fraction'):
        _tool('test').main(_own(cfg_path, foreign,
                                '--work-dir', str(tmp_path / 'a')))
    capsys.readouterr()
    _tool('test').main(_own(cfg_path, foreign, '--unsafe-load',
                            '--work-dir', str(tmp_path / 'b')))
    out = capsys.readouterr()
    log = out.out + out.err
    assert 'WARNING' in log and 'as asked by --unsafe-load' in log
    assert 'coco/bbox_mAP' in log
