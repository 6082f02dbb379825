#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (the zip is unpacked
# in /autograder/source). It installs Python >= 3.11, the kit's dependencies in a virtual
# environment OUTSIDE the kit (/opt/gradelab-venv: readable by every user, since without
# bubblewrap the student's code runs as an unprivileged uid of its own and needs a Python), and
# bubblewrap (the sandbox; Gradescope's container may still refuse its namespaces, which
# run_autograder probes for every submission). The kit itself (the reference, hidden seeds,
# instructor predictors, data) is made readable by root only.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq bubblewrap python3 python3-venv >/dev/null || true
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=$candidate; break
  fi
done
if [ -z "$python" ]; then  # e.g. Ubuntu 22.04 (Python 3.10): its python3.11 package
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  python=python3.11
fi
venv=${GRADELAB_VENV:-/opt/gradelab-venv}
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e .
chmod -R a+rX "$venv"
chmod -R go-rwx .  # run_autograder does it again for every submission
echo "gradelab autograder ready ($("$venv/bin/python" --version))"
