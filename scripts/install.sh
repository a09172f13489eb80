#!/usr/bin/env bash
# Create .venv and install the whole stack (see README "Install").
# Idempotent: `make install` calls this only when a requirements file changed,
# and pip keeps the mmcv wheel it builds in its cache, so a rebuild is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

die() { echo "install: error: $*" >&2; exit 1; }

if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3.11
  command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; Python 3.11 is required (set PYTHON=/path/to/python3.11)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || die "Python 3.11 is required (torch 2.13.0 CPU wheel and mmcv build); $PYTHON is $pyver. Set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip (Debian: apt-get install python3.11-venv)"
inc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$inc/Python.h" ] || die "Python headers missing ($inc/Python.h); needed to build mmcv (Debian: apt-get install python3.11-dev)"
command -v "${CXX:-g++}" >/dev/null 2>&1 || die "no C++ compiler (${CXX:-g++}); needed to build mmcv's ops (Debian: apt-get install g++)"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

echo "install: [1/4] torch 2.13.0 (CPU) and build tools"
pip install -q -r requirements/build.txt
echo "install: [2/4] mmengine and mmcv's python dependencies"
pip install -q mmengine==0.10.7 "numpy>=2,<3" opencv-python==5.0.0.93
if "$VENV/bin/python" -c 'import mmcv, mmcv._ext; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
  echo "install: [3/4] mmcv 2.1.0 with ops already installed"
else
  echo "install: [3/4] mmcv 2.1.0 from source with its ops (10-20 min on 2 cores the first time; pip caches the wheel)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install -q --no-build-isolation --no-binary mmcv -r requirements/mmcv.txt
  "$VENV/bin/python" -c 'import mmcv._ext' 2>/dev/null || die "mmcv was installed without its compiled ops (mmcv._ext); see README 'Install'"
fi
echo "install: [4/4] mmdet, mmdet_alwa (editable) and test requirements"
pip install -q -r requirements/runtime.txt -r requirements/tests.txt
pip install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c 'import mmdet_alwa, mmcv.ops; print("install: ok: mmdet_alwa", mmdet_alwa.__version__)'
