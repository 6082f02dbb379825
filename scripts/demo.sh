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

mkdir -p "$out/submissions/reference" && cp -r solutions/lab1 "$out/submissions/reference/lab1"
rm -f "$out/submissions/reference/lab1/hidden.toml"

# Grading refuses to run without the sandbox unless told; a laptop without bubblewrap is told so.
unsandboxed=()
if ! { command -v bwrap >/dev/null && bwrap --ro-bind / / --unshare-all -- true 2>/dev/null; }; then
  echo "note: bubblewrap is not usable here: the demo grades WITHOUT a sandbox (--allow-unsandboxed)" >&2
  unsandboxed=(--allow-unsandboxed)
fi
.venv/bin/gradelab grade lab1 "$out/submissions/reference" "$out/submissions/student-buggy" \
  --out "$out/grades" --details "${unsandboxed[@]}"
