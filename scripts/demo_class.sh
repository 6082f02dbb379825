#!/usr/bin/env bash
# The instructor's side on a small Lab 1 class: grade six submissions in the sandbox (2 at a time),
# then compare their code, and print where the class page and the similarity report are.
#   sec1/ada  the reference (correct)
#   sec1/bob  the reference + examples/lab1-buggy.patch (bias gradient averaged, softmax without the max shift)
#   sec2/cyd  the reference + examples/lab1-buggy-2.patch (bias gradient averaged, Tanh's backward 1 - y)
#   sec2/dan  the reference + examples/lab1-broken.patch (a missing colon: the package does not import)
#   sec1/eve  the stubs + examples/lab1-student-a.patch (written independently of the reference)
#   sec2/fay  the stubs + examples/lab1-student-a-copy.patch (eve's work, names changed, comments added)
# ada, bob, cyd and dan are all the reference plus a small patch, so the similarity report ranks them
# as copies of one another, which they are; eve and fay are the copied pair a course would look for.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=out/demo-class
rm -rf "$out" && mkdir -p "$out/submissions"
from_reference() {  # id patch...: the reference (without its hidden seeds) plus patches
  local dest="$out/submissions/$1"; shift
  mkdir -p "$dest" && cp -r solutions/lab1 "$dest/lab1"
  rm -rf "$dest/lab1/hidden.toml" "$dest/lab1/instructor" "$dest/lab1/__pycache__"
  for p in "$@"; do git apply --directory="$dest" "$p"; done
}
from_stubs() {  # id patch: the stubs students get, plus their work as a patch
  local dest="$out/submissions/$1"
  mkdir -p "$dest" && cp -r labs/lab1 "$dest/lab1" && rm -rf "$dest/lab1/__pycache__"
  git apply --directory="$dest" "$2"
}
from_reference sec1/ada
from_reference sec1/bob examples/lab1-buggy.patch
from_reference sec2/cyd examples/lab1-buggy-2.patch
from_reference sec2/dan examples/lab1-broken.patch
from_stubs sec1/eve examples/lab1-student-a.patch
from_stubs sec2/fay examples/lab1-student-a-copy.patch

unsandboxed=()
if ! { command -v bwrap >/dev/null && bwrap --ro-bind / / --unshare-all -- true 2>/dev/null; }; then
  echo "note: bubblewrap is not usable here: the demo grades WITHOUT a sandbox (--allow-unsandboxed)" >&2
  unsandboxed=(--allow-unsandboxed)
fi
.venv/bin/gradelab grade lab1 "$out"/submissions/sec*/* --out "$out/grades" --jobs 2 "${unsandboxed[@]}"
echo
.venv/bin/gradelab similarity lab1 "$out"/submissions/sec*/* --out "$out/similarity"
echo
echo "class insight page: $out/grades/summary.html (and summary.md): the most common mistakes and who made them"
echo "similarity report:  $out/similarity/similarity.html: the flagged pairs side by side"
