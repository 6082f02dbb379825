#!/usr/bin/env bash
# What CI runs on every push and pull request, and what you can run yourself: grades labs/ on
# the public cases and writes the score table (.gradelab/summary.md), GitHub Classroom's result
# (.gradelab/classroom.json) and the score badge (.gradelab/badges/). Prints "lab1: 78/100".
# A self-check: your grade comes from the course's own grading, with hidden variants.
#   bash scripts/ci.sh [--require-full]
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=${PYTHON:-python3}
exec "$py" -m grader.course.ci @@LABS@@ --out .gradelab "$@"
