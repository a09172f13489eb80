"""scripts/install.sh stops with a clear message before touching anything
when the machine lacks what the build needs; every pip call uses the
constraints file; with FORCE_CUDA=1 it keeps the venv's CUDA torch, builds
mmcv's CUDA ops and fails loudly when check_install --expect-cuda fails
(the last ones with a fake venv interpreter: nothing is installed)."""
import os
import re
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
    assert 'Python 3.11 to 3.13 is required' in proc.stderr
    assert not (tmp_path / 'venv').exists()


def test_wrong_python_version(tmp_path):
    fake = tmp_path / 'python3.10'
    fake.write_text('#!/bin/sh\necho 3.10\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = _install(tmp_path, PYTHON=str(fake))
    assert proc.returncode == 1
    assert 'Python 3.11 to 3.13 is required' in proc.stderr
    assert 'is 3.10' in proc.stderr


def test_no_compiler(tmp_path):
    proc = _install(tmp_path, CXX='no-such-g++')
    assert proc.returncode == 1
    assert 'no C++ compiler' in proc.stderr
    assert not (tmp_path / 'venv').exists()


# A fake interpreter for the venv: it logs every call (with FORCE_CUDA and
# the constraints pip is given) and answers the script's probes from FAKE_*
# variables, so the script's decisions are tested without installing.
FAKE_PYTHON = r'''#!/usr/bin/env bash
{
  echo "CALL FORCE_CUDA=${FORCE_CUDA:-} MMCV_WITH_OPS=${MMCV_WITH_OPS:-} $*"
  prev=
  for a in "$@"; do
    [ "$prev" = -c ] && [ -f "$a" ] && sed 's/^/  C: /' "$a"
    [ "$prev" = -r ] && [ -f "$a" ] && sed 's/^/  R: /' "$a"
    prev=$a
  done
} >> "$FAKE_LOG"
case "$*" in
  *sys.version_info*) echo "${FAKE_PYVER:-3.12}" ;;
  *'import venv, ensurepip'*) ;;
  *sysconfig*) echo "$FAKE_INC" ;;
  *torch.version.cuda*) [ -n "${FAKE_TORCH:-}" ] || exit 1
                       echo "$FAKE_TORCH" ;;
  *mmcv._ext*) grep -q -- '--no-binary mmcv' "$FAKE_LOG" && exit 0
               exit "${FAKE_MMCV_RC:-1}" ;;
  *check_install.py*) echo "[FAIL] kernels on CUDA: no kernel image"
                      exit "${FAKE_CHECK_RC:-0}" ;;
esac
exit 0
'''


def _fake_install(tmp_path, **env):
    """Run install.sh against an existing venv whose python is the fake."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    python = venv / 'bin' / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    inc = tmp_path / 'include'
    inc.mkdir()
    (inc / 'Python.h').write_text('')
    log = tmp_path / 'calls.log'
    log.write_text('')
    proc = _install(tmp_path, FAKE_LOG=str(log), FAKE_INC=str(inc),
                    CXX='true', **env)
    return proc, log.read_text()


def _pip_calls(log):
    return [line for line in log.splitlines()
            if line.startswith('CALL') and ' -m pip ' in line]


def test_cpu_mode_installs_with_the_constraints(tmp_path):
    proc, log = _fake_install(tmp_path, FAKE_PYVER='3.11', FORCE_CUDA='0')
    assert proc.returncode == 0, proc.stderr
    pips = _pip_calls(log)
    assert len(pips) == 5  # build, mmengine, mmcv, runtime+extras, -e .
    for call in pips[:4]:
        assert '-c requirements/constraints.txt' in call, call
    assert '  C: torch==2.13.0' in log  # the CPU torch pin is used
    assert 'MMCV_WITH_OPS=1' in pips[2] and 'FORCE_CUDA=0 ' in pips[2]
    assert '-r requirements/tools.txt -r requirements/tests.txt' in pips[3]
    assert 'check_install.py' not in log


def test_gpu_mode_keeps_the_venv_torch_and_builds_cuda_ops(tmp_path):
    proc, log = _fake_install(tmp_path, FORCE_CUDA='1',
                              FAKE_TORCH='2.11.0+cu130 13.0')
    assert proc.returncode == 0, proc.stderr
    assert 'keeping torch 2.11.0+cu130, CUDA 13.0' in proc.stdout
    pips = _pip_calls(log)
    # no torch pin reaches pip, and of the requirement lines only the
    # runtime range, which the kept torch (checked: 2.6 to 2.13) satisfies
    # (torch itself: torchjd's lines are not torch's)
    torch_lines = [line for line in log.splitlines()
                   if re.match(r'  [CR]: torch[=<> ]', line)]
    assert torch_lines == ['  R: torch>=2.6']
    assert '  C: mmcv==2.1.0' in log  # the other pins still apply
    assert all(' -c ' in call for call in pips[:4])
    build = pips[2]
    assert 'FORCE_CUDA=1 MMCV_WITH_OPS=1' in build
    assert '--no-cache-dir' in build and '--no-build-isolation' in build
    # the probe that decided to build ran nms on CUDA
    assert "device='cuda'" in log
    assert 'CALL FORCE_CUDA=1 MMCV_WITH_OPS= tools/misc/check_install.py ' \
        '--expect-cuda' in log
    # the last step, before the final import
    assert log.index('--expect-cuda') < log.rindex('import mmdet_alwa')


def test_gpu_mode_fails_loudly_when_cuda_kernels_are_missing(tmp_path):
    proc, log = _fake_install(tmp_path, FORCE_CUDA='1', FAKE_CHECK_RC='1',
                              FAKE_TORCH='2.11.0+cu130 13.0')
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        'install: error: FORCE_CUDA=1, but tools/misc/check_install.py '
        '--expect-cuda failed')
    assert '[FAIL] kernels on CUDA' in proc.stdout
    assert 'install: ok' not in proc.stdout


def test_gpu_mode_refuses_a_cpu_torch(tmp_path):
    proc, log = _fake_install(tmp_path, FORCE_CUDA='1',
                              FAKE_TORCH='2.13.0+cpu None')
    assert proc.returncode == 1
    assert 'is a CPU-only build; install a CUDA build' in proc.stderr
    assert not _pip_calls(log)  # stopped before installing anything


def test_gpu_mode_needs_a_torch(tmp_path):
    proc, log = _fake_install(tmp_path, FORCE_CUDA='1')
    assert proc.returncode == 1
    assert 'FORCE_CUDA=1 needs a CUDA build of torch' in proc.stderr
    assert not _pip_calls(log)


def test_gpu_mode_refuses_a_torch_mmcv_cannot_build_against(tmp_path):
    proc, _ = _fake_install(tmp_path, FORCE_CUDA='1',
                            FAKE_TORCH='2.14.0+cu130 13.0')
    assert proc.returncode == 1
    assert 'mmcv 2.1.0 builds against torch 2.6 to 2.13' in proc.stderr


def test_gpu_mode_skips_a_working_cuda_mmcv(tmp_path):
    proc, log = _fake_install(tmp_path, FORCE_CUDA='1', FAKE_MMCV_RC='0',
                              FAKE_TORCH='2.11.0+cu130 13.0')
    assert proc.returncode == 0, proc.stderr
    assert 'already installed' in proc.stdout
    assert not any('--no-binary mmcv' in c for c in _pip_calls(log))


def test_python_3_14_is_refused(tmp_path):
    proc, _ = _fake_install(tmp_path, FAKE_PYVER='3.14')
    assert proc.returncode == 1
    assert 'Python 3.11 to 3.13 is required' in proc.stderr
