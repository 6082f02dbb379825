"""Every command a released handout, student README or notebook tells a student to run exists and
works in that release: each is run there, on the untouched stubs, and must end with a result or a
message (exit 0 or 1), never a missing file, a missing module or a traceback."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import release

ROOT = Path(__file__).resolve().parents[2]
LABS = ["lab1", "lab2", "lab3", "lab4", "lab5"]
STARTS = ("pytest ", "gradelab ", "python ", ".venv/bin/", "cd labs && python ")
SKIP = ("bash scripts/setup.sh", "source ", ".venv/bin/jupyter")  # set-up (test_release.py) and a server

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("solutions")]


def commands_in(text: str) -> set[str]:
    """Commands in code spans and in fenced blocks (a line each, up to a `#` comment or two spaces)."""
    found: set[str] = set()
    candidates = re.findall(r"`([^`\n]+)`", text)
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        candidates += [re.split(r"\s{2,}|\s#", line.strip().removeprefix("$ "))[0] for line in block.splitlines()]
    for c in candidates:
        c = c.strip()
        installs = " pip install " in f" {c} "  # set-up, run by test_release.py in its own venv: never here
        if c.startswith(STARTS) and not c.startswith(SKIP) and not installs \
                and not re.search(r"\b[A-Z]{3,}\b|/tmp/|<", c):
            if not (c.startswith("gradelab ") and len(c.split()) < 3):  # "`gradelab test`" names the command
                found.add(c)
    return found


def _argv(command: str, py: str) -> tuple[list[str], str]:
    """(argv, folder relative to the release) for one command, with the kit's interpreter."""
    folder = "."
    if command.startswith("cd labs && "):
        folder, command = "labs", command.removeprefix("cd labs && ")
    words = shlex.split(command)
    head = words[0].removeprefix(".venv/bin/")
    if head == "pytest":
        return [py, "-m", "pytest", *words[1:]], folder
    if head == "gradelab":
        return [py, "-m", "grader.cli", *words[1:]], folder
    assert head == "python", command
    return [py, *words[1:]], folder


def test_commands_are_found_in_a_handout() -> None:
    text = "Run `pytest tests/lab1 -m \"not slow\"` or\n```sh\npytest tests/lab1   # all\ngradelab list lab1\n```\n" \
           "`python scripts/x.py --impl DIR` `gradelab test lab1 --impl /tmp/x` `cd labs && python -m lab5.show`" \
           " and `gradelab test` runs them too; `.venv/bin/python -m pip install -e \".[nbgrader]\"` is set-up"
    assert commands_in(text) == {'pytest tests/lab1 -m "not slow"', "pytest tests/lab1", "gradelab list lab1",
                                 "cd labs && python -m lab5.show"}


@pytest.mark.parametrize("lab", LABS)
def test_every_command_the_release_names_runs_there(lab: str, tmp_path: Path) -> None:
    if lab == "lab5":
        pytest.importorskip("torch")
    out = tmp_path / "rel"
    release.build([lab], out, root=ROOT, git=False, log=lambda *_: None)
    texts = [(out / "labs" / lab / "README.md").read_text(), (out / "README.md").read_text()]
    nb = json.loads((out / "notebooks" / f"{lab}.ipynb").read_text())
    texts += ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    commands = sorted(set().union(*(commands_in(t) for t in texts)))
    assert any(c.startswith("pytest tests/" + lab) for c in commands), commands
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["GRADELAB_ROOT"] = str(out)
    env["MPLBACKEND"] = "Agg"
    problems = []
    for command in commands:
        argv, folder = _argv(command, sys.executable)
        if "mnist" in command and "-m" not in command and command.startswith("pytest") and "not slow" not in command:
            argv += ["-m", "not slow"]  # the training case on the stubs fails at once anyway; keep the run short
        done = subprocess.run(argv, cwd=out / folder, env=env, capture_output=True, text=True, timeout=900)
        said = done.stdout + done.stderr
        bad = [w for w in ("Traceback", "No such file", "No module named", "can't open file") if w in said]
        if done.returncode not in (0, 1) or bad:
            problems.append(f"{command} (in {folder}): exit {done.returncode}, {bad}\n{said[-1500:]}")
    assert not problems, "\n\n".join(problems)
