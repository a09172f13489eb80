"""The checks of ``tools/misc/check_install.py``: is this environment able to
train with mmdet_alwa, on the device the user expects?

Each check is a small function returning :class:`Check` (``ok``, what was
seen, and a one-line ``fix`` when not ok); :func:`run_checks` runs them all.
Nothing here calls ``mmcv.ops.get_compiling_cuda_version``: it segfaulted
with a real CUDA build of mmcv 2.1.0 whose kernels worked. Whether mmcv has
CUDA kernels is found out by running them (:func:`check_kernels`).

The CPU oracles are worked out by hand: NMS on four boxes whose IoUs are
computed in the comments, and RoIAlign on a feature map that is linear in x
and y, which bilinear sampling reproduces exactly (so each output is the
value at its bin's centre) and whose backward is the adjoint of a linear map
(``<grad, input> = <upstream, output>``). On CUDA the same cases run, plus
random inputs compared with the CPU kernels.
"""
import importlib
import importlib.metadata
import platform
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .dist_utils import (ALLOW_CPU_DIST_ENV, cpu_dist_allowed,
                         cpu_fallback_cause, distributed_backend,
                         gpus_expected)

#: the modules whose ``__version__`` is reported, by display name
VERSIONED_MODULES = (('mmcv', 'mmcv'), ('mmengine', 'mmengine'),
                     ('mmdet', 'mmdet'), ('mmdet_alwa', 'mmdet_alwa'),
                     ('numpy', 'numpy'), ('opencv', 'cv2'))
MMCV_BUILD = ('MMCV_WITH_OPS=1 pip install --no-build-isolation --no-binary '
              'mmcv --no-cache-dir --force-reinstall "mmcv==2.1.0"')
CUDA_TORCH_FIX = ('install a CUDA build of torch that mmcv 2.1.0 builds '
                  'against (pip install torch --index-url '
                  'https://download.pytorch.org/whl/cuXXX for your driver), '
                  'then rebuild mmcv with FORCE_CUDA=1 (README "On a GPU '
                  'machine")')


@dataclass
class Check:
    """One check's outcome: ``fix`` is a one-line remedy when not ``ok``."""
    name: str
    ok: bool
    detail: str
    fix: str = ''


def collect_versions() -> Dict[str, str]:
    """python, torch and its CUDA, the GPUs, and the OpenMMLab stack.

    mmengine's ``collect_env`` is not used: it imports ``distutils`` (gone
    from Python 3.12 without setuptools' shim) and runs the compilers.
    """
    versions = {'python': platform.python_version(),
                'torch': torch.__version__,
                'torch CUDA': torch.version.cuda or 'none (CPU-only build)'}
    if torch.cuda.is_available():
        versions['GPUs'] = ', '.join(
            f'{i}: {torch.cuda.get_device_name(i)}'
            for i in range(torch.cuda.device_count()))
    else:
        versions['GPUs'] = 'none visible to torch'
    for name, module in VERSIONED_MODULES:
        try:
            versions[name] = importlib.import_module(module).__version__
        except Exception as e:  # noqa: BLE001  (reported, then checked)
            versions[name] = f'missing ({type(e).__name__}: {e})'
    return versions


def check_versions(dist_name: str = 'mmdet_alwa') -> Check:
    """Every ``install_requires`` range of the installed ``dist_name``
    holds for the installed packages (extras are not checked)."""
    from packaging.requirements import Requirement
    try:
        requires = importlib.metadata.requires(dist_name) or []
    except importlib.metadata.PackageNotFoundError:
        return Check('version ranges', True,
                     f'{dist_name} is not pip-installed (run from a '
                     f'checkout): ranges not checked')
    bad, checked = [], 0
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and 'extra' in str(req.marker):
            continue
        checked += 1
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            bad.append((req, None))
            continue
        if not req.specifier.contains(have, prereleases=True):
            bad.append((req, have))
    if not bad:
        return Check('version ranges', True,
                     f'the {checked} requirements of {dist_name} hold')
    detail = '; '.join(f'{r.name} {have or "missing"} (needs '
                       f'{r.specifier or "any"})' for r, have in bad)
    fix = 'pip install ' + ' '.join(f'"{r.name}{r.specifier}"'
                                    for r, _ in bad)
    if any(r.name == 'mmcv' for r, _ in bad):
        fix += f'  (mmcv from source: {MMCV_BUILD})'
    return Check('version ranges', False, detail, fix)


def check_mmcv_ext() -> Check:
    """mmcv's compiled ops (``mmcv._ext``) load."""
    try:
        importlib.import_module('mmcv._ext')
    except Exception as e:  # noqa: BLE001  (ImportError, undefined symbol)
        return Check('mmcv compiled ops', False,
                     f'mmcv._ext does not load ({type(e).__name__}: '
                     f'{str(e).splitlines()[0] if str(e) else ""})',
                     f'rebuild mmcv with its ops against this torch: '
                     f'{MMCV_BUILD} (FORCE_CUDA=1 on a GPU machine)')
    return Check('mmcv compiled ops', True, 'mmcv._ext loads')


# NMS: box 3 scores highest; box 0 overlaps it with IoU 100/105 = 0.95 and
# box 1 with IoU 85.5/119.5 = 0.72 (both > 0.5, suppressed); box 2 is apart
NMS_BOXES = ((0., 0., 10., 10.), (1., 1., 11., 11.), (20., 20., 30., 30.),
             (0., 0., 10., 10.5))
NMS_SCORES = (0.9, 0.8, 0.7, 0.95)
NMS_KEEP = [3, 2]
# RoIAlign (aligned=True, spatial_scale 1, 2x2 bins, 2x2 samples per bin) of
# f(y, x) = x + 10 y on an 8x10 map, RoI x 2..6, y 1..5: pixel centres are at
# integer coordinates after the -0.5 shift, the bins are 2 px wide with
# centres x = 2.5, 4.5 and y = 1.5, 3.5, so the outputs are f there
ROI = (0., 2., 1., 6., 5.)
ROI_OUT = [[17.5, 19.5], [37.5, 39.5]]


def _ramp(device) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(8.), torch.arange(10.), indexing='ij')
    return (x + 10 * y)[None, None].to(device)


def _roi_align(feat: torch.Tensor, rois: torch.Tensor, upstream=None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    from mmcv.ops import RoIAlign
    feat = feat.detach().clone().requires_grad_(True)
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2,
                   aligned=True)(feat, rois)
    out.backward(torch.ones_like(out) if upstream is None else upstream)
    return out.detach(), feat.grad


def _kernels_on(device: str) -> None:
    """The hand-worked NMS and RoIAlign cases on ``device``; raises
    AssertionError naming the first difference."""
    from mmcv.ops import nms
    boxes = torch.tensor(NMS_BOXES, device=device)
    _, keep = nms(boxes, torch.tensor(NMS_SCORES, device=device), 0.5)
    assert keep.cpu().tolist() == NMS_KEEP, \
        f'nms kept {keep.cpu().tolist()}, expected {NMS_KEEP}'
    feat = _ramp(device)
    rois = torch.tensor([ROI], device=device)
    out, grad = _roi_align(feat, rois)
    expected = torch.tensor(ROI_OUT)[None, None]
    assert torch.allclose(out.cpu(), expected, atol=1e-4), \
        f'RoIAlign forward {out.cpu().flatten().tolist()}, expected ' \
        f'{expected.flatten().tolist()}'
    # adjoint: <grad, f> = <1, out> = 114, <grad, 1> = 4 outputs
    total, moment = grad.sum().item(), (grad * feat).sum().item()
    assert abs(total - 4) < 1e-4 and abs(moment - 114) < 1e-3, \
        f'RoIAlign backward: sum {total} (expected 4), <grad, input> ' \
        f'{moment} (expected 114)'


def _cuda_matches_cpu() -> None:
    """Random NMS and RoIAlign inputs give the CPU kernels' results on
    CUDA (RoIAlign forward and backward within 1e-4)."""
    from mmcv.ops import nms
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=gen) * 30],
                      1)
    scores = torch.rand(200, generator=gen)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_cuda = nms(boxes.cuda(), scores.cuda(), 0.5)
    assert keep_cuda.cpu().tolist() == keep_cpu.tolist(), \
        f'nms on CUDA kept {keep_cuda.numel()} boxes, on CPU ' \
        f'{keep_cpu.numel()} (or another order)'
    feat = torch.randn(2, 8, 16, 16, generator=gen)
    lo = torch.rand(16, 2, generator=gen) * 10
    rois = torch.cat([torch.randint(0, 2, (16, 1), generator=gen).float(),
                      lo, lo + 1 + torch.rand(16, 2, generator=gen) * 5], 1)
    upstream = torch.randn(16, 8, 2, 2, generator=gen)
    out_cpu, grad_cpu = _roi_align(feat, rois, upstream)
    out_cuda, grad_cuda = _roi_align(feat.cuda(), rois.cuda(),
                                     upstream.cuda())
    for what, a, b in (('forward', out_cuda, out_cpu),
                       ('backward', grad_cuda, grad_cpu)):
        err = (a.cpu() - b).abs().max().item()
        assert err <= 1e-4, \
            f'RoIAlign {what} on CUDA differs from CPU by {err:.3g}'


def _arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST for the visible GPUs, e.g. ``9.0``."""
    caps = sorted({torch.cuda.get_device_capability(i)
                   for i in range(torch.cuda.device_count())})
    return ';'.join(f'{a}.{b}' for a, b in caps) or '<arch, e.g. 9.0>'


def check_kernels() -> List[Check]:
    """mmcv's nms and RoIAlign (forward and backward) on the CPU against the
    hand-worked values, and with CUDA also on the GPU against them and
    against the CPU kernels."""
    checks = []
    try:
        _kernels_on('cpu')
    except Exception as e:  # noqa: BLE001
        checks.append(Check('kernels on CPU', False,
                             f'{type(e).__name__}: {e}',
                             f'rebuild mmcv with its ops: {MMCV_BUILD}'))
    else:
        checks.append(Check('kernels on CPU', True,
                            'nms, RoIAlign forward/backward = hand values'))
    if not torch.cuda.is_available():
        return checks
    try:
        _kernels_on('cuda')
        _cuda_matches_cpu()
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001
        checks.append(Check(
            'kernels on CUDA', False,
            f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}',
            f'rebuild mmcv with CUDA kernels for this GPU: FORCE_CUDA=1 '
            f'TORCH_CUDA_ARCH_LIST="{_arch_list()}" {MMCV_BUILD}'))
    else:
        checks.append(Check('kernels on CUDA', True,
                            'nms, RoIAlign forward/backward = hand values '
                            'and = CPU kernels'))
    return checks


def check_cuda(expect_cuda: bool = False) -> Check:
    """Whether torch can use CUDA; a failure only with ``expect_cuda``."""
    if torch.cuda.is_available():
        return Check('CUDA', True, f'torch CUDA {torch.version.cuda}, '
                     f'{torch.cuda.device_count()} device(s)')
    cause = cpu_fallback_cause()
    if not expect_cuda:
        return Check('CUDA', True, f'not used: {cause}')
    fix = CUDA_TORCH_FIX if torch.version.cuda is None else \
        ('torch cannot see a GPU: check nvidia-smi, that the driver supports '
         f'CUDA {torch.version.cuda}, and CUDA_VISIBLE_DEVICES')
    return Check('CUDA', False, f'--expect-cuda, but {cause}', fix)


def check_distributed() -> Check:
    """The backend of a ``pytorch``/``slurm`` launch, and the mismatch
    "GPUs expected but torch has no CUDA" that makes the launch refuse."""
    backend = distributed_backend()
    if backend == 'nccl':
        return Check('distributed backend', True, 'nccl (CUDA)')
    try:
        allowed = cpu_dist_allowed()
    except ValueError as e:
        return Check('distributed backend', False, str(e),
                     f'export {ALLOW_CPU_DIST_ENV}=1 or unset it')
    expected = gpus_expected()
    detail = ('gloo on CPU processes, through '
              'mmdet_alwa.utils.setup_cpu_distributed')
    if expected is None:
        return Check('distributed backend', True, detail)
    if allowed:
        return Check('distributed backend', True,
                     f'{detail} ({expected} ignored: '
                     f'{ALLOW_CPU_DIST_ENV}=1)')
    return Check('distributed backend', False,
                 f'GPUs expected but torch has no CUDA: {expected}, and '
                 f'{cpu_fallback_cause()}; a distributed launch refuses',
                 f'{CUDA_TORCH_FIX}; or, to train on the CPU anyway, '
                 f'{ALLOW_CPU_DIST_ENV}=1 / --allow-cpu-dist')


def _registrations() -> List[Tuple[str, Callable[[], object]]]:
    """(what, lookup) of modules that ``import mmdet_alwa`` registers."""
    from mmdet.registry import HOOKS, MODELS

    from mmdet_alwa.weighting.registry import RULES
    return [('HOOKS LossWeightingHook',
             lambda: HOOKS.get('LossWeightingHook')),
            ('MODELS NTXentLoss', lambda: MODELS.get('NTXentLoss')),
            ('rule ALWA', lambda: RULES.get('ALWA'))]


def check_registration() -> Check:
    """After ``import mmdet_alwa`` our hook, a loss and a rule are found in
    mmdet's registries and in our rule table."""
    try:
        importlib.import_module('mmdet_alwa')
        missing = [name for name, get in _registrations() if get() is None]
    except Exception as e:  # noqa: BLE001
        missing = [f'({type(e).__name__}: {e})']
    if missing:
        return Check('registration', False,
                     f'not registered after import mmdet_alwa: '
                     f'{", ".join(missing)}',
                     'reinstall mmdet_alwa (pip install --no-build-isolation '
                     '--no-deps -e .) in the python that runs mmdet, and '
                     "keep custom_imports=dict(imports=['mmdet_alwa']) in "
                     'the config')
    return Check('registration', True, ', '.join(
        name for name, _ in _registrations()))


def run_checks(expect_cuda: bool = False
               ) -> Tuple[Dict[str, str], List[Check]]:
    """The versions and every check, in report order."""
    versions = collect_versions()
    checks = [check_versions(), check_mmcv_ext()]
    if checks[-1].ok:
        checks += check_kernels()
    checks += [check_cuda(expect_cuda), check_distributed(),
               check_registration()]
    return versions, checks


def format_report(versions: Dict[str, str], checks: List[Check],
                  width: Optional[int] = None) -> str:
    """Text of the versions and checks; each failure with its fix line."""
    width = width or max(len(k) for k in versions)
    lines = [f'{k:<{width}} : {v}' for k, v in versions.items()]
    lines.append('')
    for c in checks:
        lines.append(f'[{" ok " if c.ok else "FAIL"}] {c.name}: {c.detail}')
        if not c.ok:
            lines.append(f'       fix: {c.fix}')
    failed = sum(not c.ok for c in checks)
    lines.append('')
    lines.append('all checks passed' if not failed else
                 f'{failed} check(s) failed')
    return '\n'.join(lines)
