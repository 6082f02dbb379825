#!/usr/bin/env bash
# Sets up this repository on a fresh machine: a virtual environment in .venv with the kit
# (the `gradelab` command, the pytest plugin, NumPy) installed in editable mode, so the tests
# find labs/ beside them. Run it again any time; it only installs what is missing.
#   bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "this kit needs Python >= 3.11 ($python is $("$python" --version 2>&1)); set PYTHON=python3.12 for another one" >&2; exit 2; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "@@INSTALL_TARGET@@"
echo "ready. Run the tests with:  .venv/bin/python -m pytest tests/@@FIRST_LAB@@"
echo "(or activate the environment first: source .venv/bin/activate, then: pytest tests/@@FIRST_LAB@@)"
