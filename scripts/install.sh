#!/usr/bin/env bash
# Create .venv and install the whole stack (see README "Install").
# Every pip call uses `-c requirements/constraints.txt`: the exact versions of
# our own runs (the requirements files hold the ranges users get).
# Idempotent: `make install` calls this only when a requirements file changed,
# and pip keeps the mmcv wheel it builds in its cache, so a rebuild is fast.
#
# FORCE_CUDA=1 (GPU machines): keeps the torch already in the venv (a CUDA
# build that mmcv 2.1.0 builds against: torch 2.6 to 2.13; a new venv sees the
# system's packages, e.g. an image's torch), builds mmcv's CUDA ops, and ends
# with `tools/misc/check_install.py --expect-cuda`: it fails when the CUDA
# kernels do not run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CONSTRAINTS=requirements/constraints.txt
GPU=0
[ "${FORCE_CUDA:-0}" = 1 ] && GPU=1

die() { echo "install: error: $*" >&2; exit 1; }

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$VENV/bin/python" ]; then
    PYTHON=$VENV/bin/python
  else
    PYTHON=python3.11
    command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
  fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; Python 3.11 to 3.13 is required (set PYTHON=/path/to/python3.11)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$pyver" in
  3.11|3.12|3.13) ;;
  *) die "Python 3.11 to 3.13 is required; $PYTHON is $pyver. Set PYTHON=/path/to/python3.11" ;;
esac
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip (Debian: apt-get install python$pyver-venv)"
inc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$inc/Python.h" ] || die "Python headers missing ($inc/Python.h); needed to build mmcv (Debian: apt-get install python$pyver-dev)"
command -v "${CXX:-g++}" >/dev/null 2>&1 || die "no C++ compiler (${CXX:-g++}); needed to build mmcv's ops (Debian: apt-get install g++)"

if [ ! -x "$VENV/bin/python" ]; then
  if [ "$GPU" = 1 ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY=$VENV/bin/python
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

if [ "$GPU" = 1 ]; then
  # the venv's own CUDA torch stays: no torch pin, no torch requirement line
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  grep -v '^torch[=<> ]' "$CONSTRAINTS" > "$tmp/constraints.txt"
  grep -v '^torch[=<> ]' requirements/build.txt > "$tmp/build.txt"
  CONSTRAINTS=$tmp/constraints.txt
  BUILD=$tmp/build.txt
  torch_info=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null) \
    || die "FORCE_CUDA=1 needs a CUDA build of torch in $VENV first: $PY -m pip install torch --index-url https://download.pytorch.org/whl/cuXXX (your CUDA)"
  read -r torch_ver torch_cuda <<<"$torch_info"
  [ "$torch_cuda" != None ] || die "FORCE_CUDA=1 but the torch in $VENV ($torch_ver) is a CPU-only build; install a CUDA build: $PY -m pip install --force-reinstall torch==${torch_ver%%+*} --index-url https://download.pytorch.org/whl/cuXXX"
  IFS=. read -r tmaj tmin _ <<<"${torch_ver%%+*}"
  { [ "$tmaj" = 2 ] && [ "$tmin" -ge 6 ] && [ "$tmin" -le 13 ]; } \
    || die "mmcv 2.1.0 builds against torch 2.6 to 2.13 (torch >= 2.14 headers need C++20); $VENV has torch $torch_ver"
  echo "install: [1/4] build tools (keeping torch $torch_ver, CUDA $torch_cuda)"
else
  BUILD=requirements/build.txt
  echo "install: [1/4] torch 2.13.0 (CPU) and build tools"
fi
pip install -q -c "$CONSTRAINTS" -r "$BUILD"
echo "install: [2/4] mmengine and mmcv's python dependencies"
pip install -q -c "$CONSTRAINTS" $(grep -E '^(mmengine|numpy)' requirements/runtime.txt)
# mmcv 2.1.x with its compiled ops (and, for FORCE_CUDA=1, its CUDA kernels)
MMCV_PROBE='import mmcv, mmcv._ext; assert mmcv.__version__.startswith("2.1.")'
[ "$GPU" = 1 ] && MMCV_PROBE="$MMCV_PROBE
import torch; from mmcv.ops import nms
b = torch.rand(8, 4, device='cuda'); b[:, 2:] += 1; nms(b, torch.rand(8, device='cuda'), 0.5)"
if "$PY" -c "$MMCV_PROBE" 2>/dev/null; then
  echo "install: [3/4] mmcv 2.1 with ops already installed"
elif [ "$GPU" = 1 ]; then
  echo "install: [3/4] mmcv 2.1 from source with its CUDA ops (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-<the visible GPUs>})"
  # no cache: a cached wheel may be a CPU-only build
  FORCE_CUDA=1 MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} pip install -q --no-build-isolation \
    --no-binary mmcv --no-cache-dir --force-reinstall --no-deps -c "$CONSTRAINTS" -r requirements/mmcv.txt
else
  echo "install: [3/4] mmcv 2.1 from source with its ops (10-20 min on 2 cores the first time; pip caches the wheel)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install -q --no-build-isolation --no-binary mmcv \
    -c "$CONSTRAINTS" -r requirements/mmcv.txt
  "$PY" -c 'import mmcv._ext' 2>/dev/null || die "mmcv was installed without its compiled ops (mmcv._ext); see README 'Install'"
fi
echo "install: [4/4] mmdet, mmdet_alwa (editable), tools and test requirements"
pip install -q -c "$CONSTRAINTS" -r requirements/runtime.txt -r requirements/tools.txt -r requirements/tests.txt
pip install -q --no-build-isolation --no-deps -e .
if [ "$GPU" = 1 ]; then
  "$PY" tools/misc/check_install.py --expect-cuda \
    || die "FORCE_CUDA=1, but tools/misc/check_install.py --expect-cuda failed: apply the fix lines above, then rerun FORCE_CUDA=1 $0"
fi
"$PY" -c 'import mmdet_alwa, mmcv.ops; print("install: ok: mmdet_alwa", mmdet_alwa.__version__)'
