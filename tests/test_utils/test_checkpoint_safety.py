"""mmdet_alwa.utils.checkpoint_safety: checkpoints load with torch's
``weights_only=True`` and an allow-list; a pickle's code never runs unless
the user opts in; importing the package changes nothing.

The reference for what a checkpoint holds is torch's unrestricted unpickler
(``weights_only=False``) on a file we wrote ourselves."""
import fractions
import logging
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.runner import CheckpointLoader

from _helpers import REPO_ROOT
from mmdet_alwa.utils import checkpoint_safety
from mmdet_alwa.utils.checkpoint_safety import (TORCH_FORCE_SAFE,
                                                TORCH_FORCE_UNSAFE,
                                                UNSAFE_ENV,
                                                safe_checkpoint_loading)


class Touch:
    """Unpickling it creates ``path`` (os.system, the issue's payload)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f'touch {self.path}', )


class OpenFile:
    """Unpickling it creates ``path`` through ``builtins.open``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


class EvalOpen:
    """Unpickling it creates ``path`` through ``builtins.eval``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return eval, (f'open({self.path!r}, "w")', )


class GetattrEscape:
    """``getattr`` is the one builtin mmengine checkpoints need (for
    HistoryBuffer's methods); it must not reach anything else."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


PAYLOADS = [Touch, OpenFile, EvalOpen, GetattrEscape]


def _evil(tmp_path, payload):
    """A checkpoint-shaped file whose pickle carries ``payload``."""
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(meta=dict(iter=2), state_dict={'w': torch.ones(2)},
                    evil=payload(marker)), path)
    return path, marker


def _hub_checkpoint(path, **extra):
    """What an mmengine checkpoint's message hub holds: HistoryBuffers of
    numpy floats, numpy scalars and arrays in the runtime info."""
    loss = HistoryBuffer()
    for v in (2.5, 1.5, 0.5):
        loss.update(np.float64(v))
    ckpt = dict(
        meta=dict(iter=3, seed=np.int64(7)),
        state_dict={'w': torch.arange(4.)},
        message_hub=dict(log_scalars={'train/loss': loss},
                         runtime_info=dict(iter=3,
                                           arr=np.arange(3, dtype=np.int32),
                                           lr=np.float32(0.01))),
        **extra)
    torch.save(ckpt, path)
    return path


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def warnings_logged():
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch):
    for name in (UNSAFE_ENV, TORCH_FORCE_SAFE, TORCH_FORCE_UNSAFE):
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------- nothing at import
def test_import_changes_nothing_in_torch_or_mmengine():
    """A fresh interpreter: mmengine's scheme table, torch's safe globals
    and the environment are the same before and after importing us."""
    script = textwrap.dedent('''
        import os, torch
        from mmengine.runner.checkpoint import CheckpointLoader
        import mmdet  # noqa
        def state():
            return (sorted((k, f'{v.__module__}.{v.__qualname__}')
                           for k, v in CheckpointLoader._schemes.items()),
                    sorted(map(str, torch.serialization.get_safe_globals())),
                    dict(os.environ))
        before = state()
        import mmdet_alwa, mmdet_alwa.utils, mmdet_alwa.compat
        import mmdet_alwa.utils.checkpoint_safety
        after = state()
        assert before == after, (before, after)
        print('UNCHANGED', len(before[0]))
    ''')
    env = {k: v for k, v in os.environ.items()
           if k not in (UNSAFE_ENV, TORCH_FORCE_SAFE, TORCH_FORCE_UNSAFE)}
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'UNCHANGED' in proc.stdout


def test_torch_defaults_to_weights_only():
    """The torch we accept (>= 2.6) loads with weights_only=True when the
    caller does not say (mmengine's loaders do not)."""
    assert checkpoint_safety._torch_version() >= checkpoint_safety.MIN_TORCH
    assert torch.serialization._default_to_weights_only(None) is True


# ------------------------------------------------------ what loads safely
def test_mmengine_checkpoint_loads_as_the_full_unpickler_reads_it(tmp_path):
    path = _hub_checkpoint(str(tmp_path / 'hub.pth'))
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path)  # torch's default alone
    reference = torch.load(path, weights_only=False)
    with safe_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(path)
    buf, ref = (c['message_hub']['log_scalars']['train/loss']
                for c in (ckpt, reference))
    assert type(buf) is HistoryBuffer
    np.testing.assert_array_equal(buf.data[0], ref.data[0])
    assert buf.mean() == ref.mean() == 1.5 and buf.min() == 0.5
    info, ref_info = (c['message_hub']['runtime_info']
                      for c in (ckpt, reference))
    np.testing.assert_array_equal(info['arr'], ref_info['arr'])
    assert info['arr'].dtype == np.int32 and info['lr'] == np.float32(0.01)
    assert ckpt['meta'] == reference['meta'] == dict(iter=3, seed=7)
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))


def test_allowed_getattr_is_only_history_buffer_statistics():
    g = checkpoint_safety._history_buffer_getattr
    for name in ('min', 'max', 'mean', 'current'):
        assert g(HistoryBuffer, name) is getattr(HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, '__init__'),
                      (HistoryBuffer, 'register_statistics'),
                      (np.ndarray, 'tofile'), (os, 'system')):
        with pytest.raises(pickle.UnpicklingError, match='only HistoryBuf'):
            g(obj, name)


# ------------------------------------------------- malicious pickles
@pytest.mark.parametrize('payload', PAYLOADS, ids=lambda p: p.__name__)
def test_malicious_pickle_does_not_run(payload, tmp_path):
    path, marker = _evil(tmp_path, payload)
    # after import mmdet_alwa, plain mmengine (no context) ...
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(path)
    # ... and our safe loader, also for a caller that asks for
    # weights_only=False inside the block
    for load in (lambda: CheckpointLoader.load_checkpoint(path),
                 lambda: torch.load(path, weights_only=False)):
        with pytest.raises(pickle.UnpicklingError,
                           match='refused by the safe loader') as err:
            with safe_checkpoint_loading():
                load()
        assert '--unsafe-load' in str(err.value)
    assert not marker.exists()


def test_with_and_without_our_import_in_a_fresh_process(tmp_path):
    """The issue's case: plain mmengine refuses the payload; after
    ``import mmdet_alwa`` (which every config of ours does) it still does."""
    path, marker = _evil(tmp_path, Touch)
    for imports in ('', 'import mmdet_alwa'):
        script = textwrap.dedent(f'''
            import pickle
            {imports}
            from mmengine.runner import CheckpointLoader
            try:
                CheckpointLoader.load_checkpoint({path!r})
            except pickle.UnpicklingError:
                print('REFUSED')
        ''')
        env = {k: v for k, v in os.environ.items()
               if k not in (UNSAFE_ENV, TORCH_FORCE_UNSAFE)}
        proc = subprocess.run([sys.executable, '-c', script], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True,
                              timeout=300)
        assert 'REFUSED' in proc.stdout, (imports, proc.stderr[-3000:])
        assert not marker.exists(), imports


# ----------------------------------------------------------- the opt-in
def test_foreign_global_needs_the_opt_in_which_is_logged(
        tmp_path, monkeypatch, warnings_logged):
    """A legit checkpoint with a global outside the allow-list (a
    ``fractions.Fraction`` in its meta) loads only when asked, by argument
    or environment; each use is a WARNING; the scope ends with the block."""
    path = _hub_checkpoint(str(tmp_path / 'f.pth'),
                           extra=dict(ratio=fractions.Fraction(1, 3)))
    with pytest.raises(pickle.UnpicklingError, match='fractions.Fraction'):
        with safe_checkpoint_loading():
            CheckpointLoader.load_checkpoint(path)
    assert not [r for r in warnings_logged if r.levelno >= logging.WARNING]

    with safe_checkpoint_loading(unsafe=True):
        assert os.environ[TORCH_FORCE_UNSAFE] == '1'
        ckpt = CheckpointLoader.load_checkpoint(path)
    assert ckpt['extra']['ratio'] == fractions.Fraction(1, 3)
    assert TORCH_FORCE_UNSAFE not in os.environ
    monkeypatch.setenv(UNSAFE_ENV, '1')
    with safe_checkpoint_loading():
        ckpt = CheckpointLoader.load_checkpoint(path)
    assert ckpt['extra']['ratio'] == fractions.Fraction(1, 3)
    said = [r.getMessage() for r in warnings_logged
            if r.levelno == logging.WARNING]
    assert len(said) == 2
    assert 'as asked by --unsafe-load' in said[0]
    assert f'as asked by {UNSAFE_ENV}=1' in said[1]
    assert all('can run any code' in m for m in said)
    # back to safe once the block is over
    monkeypatch.delenv(UNSAFE_ENV)
    with pytest.raises(pickle.UnpicklingError):
        with safe_checkpoint_loading():
            CheckpointLoader.load_checkpoint(path)


def test_unsafe_opt_in_does_run_pickles(tmp_path):
    """What the opt-in means (so the docs' warning is true): torch honours
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD for mmengine's loads."""
    path, marker = _evil(tmp_path, OpenFile)
    with safe_checkpoint_loading(unsafe=True):
        CheckpointLoader.load_checkpoint(path)
    assert marker.exists()


def test_bad_environment_values_are_errors(monkeypatch):
    monkeypatch.setenv(UNSAFE_ENV, 'maybe')
    with pytest.raises(ValueError, match=UNSAFE_ENV):
        with safe_checkpoint_loading():
            pass
    monkeypatch.setenv(UNSAFE_ENV, '1')
    monkeypatch.setenv(TORCH_FORCE_SAFE, '1')
    with pytest.raises(ValueError, match='unset one'):
        with safe_checkpoint_loading():
            pass


def test_old_torch_is_refused_not_silently_unsafe(monkeypatch):
    monkeypatch.setattr(torch, '__version__', '2.5.1+cu124')
    with pytest.raises(RuntimeError, match='torch >= 2.6'):
        with safe_checkpoint_loading():
            pass
    with safe_checkpoint_loading(unsafe=True):  # the explicit opt-in
        pass


def test_block_restores_torch_and_environment():
    class Mine:
        pass

    original = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([Mine, np.ndarray])
    try:
        before = set(map(id, torch.serialization.get_safe_globals()))
        with safe_checkpoint_loading():
            assert os.environ[TORCH_FORCE_SAFE] == '1'
        assert TORCH_FORCE_SAFE not in os.environ
        # a global the user had allowed is still allowed
        assert set(map(id, torch.serialization.get_safe_globals())) == before
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(original)
