#!/usr/bin/env bash
# The main job on the bundled data: grade two Lab 1 submissions in the sandbox (the reference,
# and an example student submission with two classic bugs) and print their score tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=out/demo
rm -rf "$out" && mkdir -p "$out/submissions"
# The buggy submission is the reference plus examples/lab1-buggy.patch, so it never drifts.
cp -r solutions/lab1 "$out/submissions/lab1-buggy" && rm -f "$out/submissions/lab1-buggy/hidden.toml"
mkdir -p "$out/submissions/student-buggy" && mv "$out/submissions/lab1-buggy" "$out/submissions/student-buggy/lab1"
git apply --directory="$out/submissions/student-buggy" examples/lab1-buggy.patch

.venv/bin/gradelab grade lab1 solutions "$out/submissions/student-buggy" --out "$out/grades" --details
