"""scripts/install.sh stops with a clear message before touching anything
when the machine lacks what the build needs."""
import os
import stat
import subprocess

from _helpers import REPO_ROOT


def _install(tmp_path, **env):
    return subprocess.run(
        ['bash', os.path.join(REPO_ROOT, 'scripts', 'install.sh')],
        env=dict(os.environ, VENV=str(tmp_path / 'venv'), **env),
        capture_output=True, text=True, timeout=60)


def test_missing_python(tmp_path):
    proc = _install(tmp_path, PYTHON=str(tmp_path / 'no-python'))
    assert proc.returncode == 1
    assert 'Python 3.11 is required' in proc.stderr
    assert not (tmp_path / 'venv').exists()


def test_wrong_python_version(tmp_path):
    fake = tmp_path / 'python3.12'
    fake.write_text('#!/bin/sh\necho 3.12\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = _install(tmp_path, PYTHON=str(fake))
    assert proc.returncode == 1
    assert 'Python 3.11 is required' in proc.stderr and '3.12' in proc.stderr


def test_no_compiler(tmp_path):
    proc = _install(tmp_path, CXX='no-such-g++')
    assert proc.returncode == 1
    assert 'no C++ compiler' in proc.stderr
    assert not (tmp_path / 'venv').exists()
