#!/usr/bin/env bash
# Sets up (with PyTorch) and runs every test: the stub and fixture checks, the engine's own
# tests, and every lab's cases against the reference solutions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --torch

.venv/bin/gradelab stubs --check
.venv/bin/gradelab fixtures --check
.venv/bin/python -m pytest --impl solutions "$@"
