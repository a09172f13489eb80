"""tools/misc/check_install.py: the versions it reports are the installed
ones, it exits 0 on this CPU, and each simulated breakage (a wrong kernel, no
mmcv._ext, a module not registered, --expect-cuda without CUDA, GPUs
expected by the environment, a version out of range) makes it exit 1 with
that problem's fix line. It never calls get_compiling_cuda_version."""
import ast
import importlib.util
import os
import os.path as osp
import platform
import subprocess
import sys
import time

import cv2
import mmcv
import mmcv.ops
import mmdet
import mmengine
import numpy as np
import pytest
import torch

import mmdet_alwa
from _helpers import REPO_ROOT, load_tool
from mmdet_alwa.utils import env_check
from mmdet_alwa.utils.dist_utils import ALLOW_CPU_DIST_ENV, SLURM_GPU_VARS

TOOL = osp.join(REPO_ROOT, 'tools/misc/check_install.py')
tool = load_tool(TOOL)

GPU_VARS = ('CUDA_VISIBLE_DEVICES', ALLOW_CPU_DIST_ENV) + SLURM_GPU_VARS
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(),
                              reason='simulates a machine without CUDA')


@pytest.fixture
def clean_env(monkeypatch):
    """No GPU variable and no opt-in: the verdicts depend on the test only."""
    for var in GPU_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _run(capsys, *argv):
    rc = tool.main(list(argv))
    return rc, capsys.readouterr().out


def _failures(out):
    """{check name: fix line} of the [FAIL] entries of a report."""
    lines = out.splitlines()
    return {line[7:].split(':')[0]: lines[i + 1].strip()
            for i, line in enumerate(lines) if line.startswith('[FAIL]')}


def test_cli_on_this_machine_reports_the_installed_versions(clean_env):
    env = {k: v for k, v in os.environ.items() if k not in GPU_VARS}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, TOOL], capture_output=True,
                          text=True, timeout=120, cwd=REPO_ROOT,
                          env=dict(env, OMP_NUM_THREADS='1'))
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    versions = dict(line.split(' : ', 1) for line in
                    proc.stdout.split('\n\n')[0].splitlines())
    versions = {k.strip(): v for k, v in versions.items()}
    assert versions['python'] == platform.python_version()
    assert versions['torch'] == torch.__version__
    assert versions['torch CUDA'] == (torch.version.cuda or
                                      'none (CPU-only build)')
    assert versions['mmcv'] == mmcv.__version__
    assert versions['mmengine'] == mmengine.__version__
    assert versions['mmdet'] == mmdet.__version__
    assert versions['mmdet_alwa'] == mmdet_alwa.__version__
    assert versions['numpy'] == np.__version__
    assert versions['opencv'] == cv2.__version__
    assert proc.stdout.rstrip().endswith('all checks passed')
    for name in ('mmcv compiled ops', 'kernels on CPU', 'registration',
                 'distributed backend', 'version ranges'):
        assert f'[ ok ] {name}:' in proc.stdout
    print(f'check_install took {elapsed:.1f} s')  # target: < 10 s on CPU


def test_never_calls_get_compiling_cuda_version(clean_env, capsys):
    """It segfaulted with a real CUDA build: make any call fail the run,
    and find no reference in the code either."""
    def boom(*args, **kwargs):
        raise AssertionError('get_compiling_cuda_version was called')
    from mmcv import _ext
    from mmcv.ops import info
    clean_env.setattr(mmcv.ops, 'get_compiling_cuda_version', boom)
    clean_env.setattr(info, 'get_compiling_cuda_version', boom)
    clean_env.setattr(_ext, 'get_compiling_cuda_version', boom)
    rc, out = _run(capsys)
    assert rc == 0, out
    for path in (TOOL, env_check.__file__):
        tree = ast.parse(open(path).read())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert 'get_compiling_cuda_version' not in names


def test_a_wrong_nms_fails(clean_env, capsys):
    def keeps_everything(boxes, scores, iou_threshold, *args, **kwargs):
        order = scores.argsort(descending=True)
        return boxes[order], order
    clean_env.setattr(mmcv.ops, 'nms', keeps_everything)
    rc, out = _run(capsys)
    assert rc == 1
    assert 'nms kept [3, 0, 1, 2], expected [3, 2]' in out
    assert _failures(out) == {'kernels on CPU': 'fix: rebuild mmcv with its '
                              'ops: ' + env_check.MMCV_BUILD}


def test_roi_align_that_ignores_aligned_fails(clean_env, capsys):
    """aligned=False samples half a pixel off: outputs 23, 25, 43, 45."""
    real = mmcv.ops.RoIAlign

    class Unaligned(real):
        def __init__(self, *args, aligned=True, **kwargs):
            super().__init__(*args, aligned=False, **kwargs)
    clean_env.setattr(mmcv.ops, 'RoIAlign', Unaligned)
    rc, out = _run(capsys)
    assert rc == 1
    assert 'RoIAlign forward [23.0, 25.0, 43.0, 45.0], expected ' \
        '[17.5, 19.5, 37.5, 39.5]' in out
    assert list(_failures(out)) == ['kernels on CPU']


def test_roi_align_with_a_wrong_backward_fails(clean_env, capsys):
    real = mmcv.ops.RoIAlign

    class HalfGrad(real):
        def forward(self, feat, rois):
            out = super().forward(feat, rois)
            return out.detach() + 0.5 * (out - out.detach())
    clean_env.setattr(mmcv.ops, 'RoIAlign', HalfGrad)
    rc, out = _run(capsys)
    assert rc == 1
    assert 'RoIAlign backward: sum 2.0 (expected 4)' in out


def test_missing_ext_fails(clean_env, capsys):
    clean_env.setitem(sys.modules, 'mmcv._ext', None)
    rc, out = _run(capsys)
    assert rc == 1
    fails = _failures(out)
    assert list(fails) == ['mmcv compiled ops']  # kernels not attempted
    assert fails['mmcv compiled ops'].startswith(
        'fix: rebuild mmcv with its ops against this torch: MMCV_WITH_OPS=1 '
        'pip install --no-build-isolation --no-binary mmcv')
    assert 'mmcv._ext does not load (ModuleNotFoundError' in out


def test_missing_registration_fails(clean_env, capsys):
    from mmdet.registry import HOOKS
    clean_env.delitem(HOOKS._module_dict, 'LossWeightingHook')
    rc, out = _run(capsys)
    assert rc == 1
    assert 'not registered after import mmdet_alwa: HOOKS LossWeightingHook' \
        in out
    assert _failures(out)['registration'].startswith(
        'fix: reinstall mmdet_alwa (pip install --no-build-isolation')


@CPU_ONLY
def test_expect_cuda_with_a_cpu_torch_fails(clean_env, capsys):
    clean_env.setattr(torch.version, 'cuda', None)
    rc, out = _run(capsys)
    assert rc == 0  # without --expect-cuda a CPU machine is fine
    rc, out = _run(capsys, '--expect-cuda')
    assert rc == 1
    assert '[FAIL] CUDA: --expect-cuda, but torch ' in out
    assert _failures(out) == {'CUDA': 'fix: ' + env_check.CUDA_TORCH_FIX}


@CPU_ONLY
def test_expect_cuda_without_a_device_names_the_driver(clean_env, capsys):
    clean_env.setattr(torch.version, 'cuda', '13.0')
    rc, out = _run(capsys, '--expect-cuda')
    assert rc == 1
    assert _failures(out)['CUDA'].startswith(
        'fix: torch cannot see a GPU: check nvidia-smi')


@CPU_ONLY
def test_gpus_expected_but_no_cuda_fails(clean_env, capsys):
    clean_env.setenv('SLURM_GPUS_ON_NODE', '8')
    rc, out = _run(capsys)
    assert rc == 1
    assert '[FAIL] distributed backend: GPUs expected but torch has no ' \
        'CUDA: SLURM_GPUS_ON_NODE=8' in out
    assert _failures(out)['distributed backend'].endswith(
        'MMDET_ALWA_ALLOW_CPU_DIST=1 / --allow-cpu-dist')
    clean_env.setenv('MMDET_ALWA_ALLOW_CPU_DIST', '1')
    rc, out = _run(capsys)
    assert rc == 0
    assert 'SLURM_GPUS_ON_NODE=8 ignored: MMDET_ALWA_ALLOW_CPU_DIST=1' in out


def test_a_version_out_of_range_fails(clean_env, capsys):
    clean_env.setattr(env_check.importlib.metadata, 'requires',
                      lambda name: ['mmcv>=2.2.0,<2.3', 'numpy>=1.23',
                                    'pytest>=100; extra == "tests"'])
    rc, out = _run(capsys)
    assert rc == 1
    assert f'[FAIL] version ranges: mmcv {mmcv.__version__} (needs ' \
        '<2.3,>=2.2.0)' in out
    fix = _failures(out)['version ranges']
    assert fix.startswith('fix: pip install "mmcv<2.3,>=2.2.0"  (mmcv from '
                          'source: MMCV_WITH_OPS=1')
    assert 'numpy' not in fix and 'pytest' not in fix  # in range / an extra


@pytest.fixture
def fake_cuda(clean_env):
    """The CUDA branch of check_kernels on the CPU: .cuda() is the identity
    and the 'cuda' device of the hand cases is the CPU."""
    real_kernels_on = env_check._kernels_on
    clean_env.setattr(torch.cuda, 'is_available', lambda: True)
    clean_env.setattr(torch.cuda, 'synchronize', lambda: None)
    clean_env.setattr(torch.cuda, 'device_count', lambda: 1)
    clean_env.setattr(torch.cuda, 'get_device_capability', lambda i: (9, 0))
    clean_env.setattr(torch.Tensor, 'cuda', lambda self, *a, **k: self)
    clean_env.setattr(env_check, '_kernels_on',
                      lambda device: real_kernels_on('cpu'))
    return clean_env


def test_cuda_branch_compares_with_the_cpu_kernels(fake_cuda):
    checks = env_check.check_kernels()
    assert [(c.name, c.ok) for c in checks] == [('kernels on CPU', True),
                                                ('kernels on CUDA', True)]
    # a CUDA nms that differs from the CPU one is caught
    real_nms = mmcv.ops.nms
    calls = []

    def second_call_drops_one(boxes, scores, thr, *args, **kwargs):
        dets, keep = real_nms(boxes, scores, thr, *args, **kwargs)
        calls.append(1)
        return (dets[:-1], keep[:-1]) if len(calls) == 2 else (dets, keep)
    fake_cuda.setattr(mmcv.ops, 'nms', second_call_drops_one)
    with pytest.raises(AssertionError, match='nms on CUDA kept'):
        env_check._cuda_matches_cpu()


def test_missing_cuda_kernels_name_the_arch(fake_cuda):
    def no_kernel():
        raise RuntimeError('CUDA error: no kernel image is available for '
                           'execution on the device\nmore')
    fake_cuda.setattr(env_check, '_cuda_matches_cpu', no_kernel)
    cpu, cuda = env_check.check_kernels()
    assert cpu.ok and not cuda.ok
    assert cuda.detail == 'RuntimeError: CUDA error: no kernel image is ' \
        'available for execution on the device'
    assert cuda.fix.startswith('rebuild mmcv with CUDA kernels for this '
                               'GPU: FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" '
                               'MMCV_WITH_OPS=1 pip install')
