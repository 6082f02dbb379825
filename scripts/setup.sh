#!/usr/bin/env bash
# Sets up a fresh machine for gradelab: .venv with gradelab installed (editable), and the
# bubblewrap sandbox used for isolated grading when this user can install it.
#   scripts/setup.sh            engine + labs 1-4 (NumPy only)
#   scripts/setup.sh --torch    also PyTorch 2.13.0 (CPU build) and Debian's chromium: what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "gradelab needs Python >= 3.11 ($python is $("$python" --version 2>&1))" >&2; exit 2; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
extras=dev,nbgrader,dask,similarity  # similarity: gradelab similarity (copydetect); nbgrader: the course-management bridge and its tests (tests/engine/test_nbgrader.py); dask: grade --scheduler (tests/engine/test_grading_dask.py)
# torch is pinned: an unpinned torch pulls the CUDA build (GBs); 2.13.0 is the CPU build here.
[ "${1:-}" = "--torch" ] && extras=$extras,torch
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the sandbox for isolated grading)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "note: bubblewrap (bwrap) is not installed; isolated grading falls back to a plain subprocess" \
         "that does not hide the file system. Install the bubblewrap package to grade for real." >&2
  fi
fi
# chromium, for the tests (--torch is the test set-up): tests/engine/test_insight.py renders the class page in it
if [ "${1:-}" = "--torch" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (tests render the class summary page in it)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
