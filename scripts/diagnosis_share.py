"""Measures, per lab, the share of the engine's buggy implementations whose failure message names the bug.

The buggy implementations are the ones the engine's tests declare (``BUGS`` in
tests/engine/test_buggy.py for Lab 1, tests/engine/test_labN_buggy.py for the others): a patch of
the reference and, per case it must fail, substrings of the message that name the bug (Lab 1 also
declares ``names``, phrases of the bug's class). Each is graded in-process on the lab's fast cases,
as the tests do.

"Names the bug" is judged on the lines written for THAT failure only: a line that every failure of
the check prints whatever the bug is does not count, namely

* a check's header (``<what>: does not match the reference``, the GradCheck header) and its own
  ``explain`` text, and an Accuracy/Metric's ``reference`` line; except for a check that tests one
  property (``exact``, or a single number: a flag, a fraction), whose header and explanation are
  printed only when that property fails;
* a case's ``(seed 0) failed:`` / ``your code raised an error`` line;
* the location and value lines (``N of M entries differ ...``, ``expected[...] = ...``, ``got ...``):
  they say where, not what.

Every other line (hints, notes that say whether forward or backward is wrong, shape and dtype
findings, the text of an error the student's code raised) is failure-specific. A failing case is
*named* when such a line contains one of the words declared for it (for Lab 1 also the bug's
``names``). Two shares per lab:

* ``named``: at least one failing case names the bug (what a student needs to find it);
* ``every case``: every failing case names it (no case fails with only a location).

    python scripts/diagnosis_share.py                 # every lab
    python scripts/diagnosis_share.py --lab lab2 -v   # one lab, each bug and its unnamed cases
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from grader import paths
from grader.judging.case import Accuracy, Case, Check, Close, GradCheck, Metric
from grader.runner import grade

TEST_FILES = {"lab1": "test_buggy.py", "lab2": "test_lab2_buggy.py", "lab3": "test_lab3_buggy.py",
              "lab4": "test_lab4_buggy.py", "lab5": "test_lab5_buggy.py"}
GRADCHECK_HEADER = "your backward disagrees with the numerical gradient of your own forward"
_DATA_LINE = re.compile(r"^\s*(\d+ of \d+ entries differ|(expected|got|numeric)\s*(\[[^\]]*\])?\s*=)")
_CASE_LINE = re.compile(r"^\S+ \((seed \d+|hidden variant \d+)\)( failed:|: your code raised an error)$")


@dataclass
class Verdict:
    bug: str
    failed: list[str]
    unnamed: list[str]  # failing cases whose message has no failure-specific line with the bug's words

    @property
    def named(self) -> bool:
        return len(self.unnamed) < len(self.failed)

    @property
    def every_case(self) -> bool:
        return not self.unnamed


def _check_lines(check: Check) -> set[str]:
    """The lines (stripped) a failure of ``check`` prints whatever the bug is: its header and explanation."""
    lines: set[str] = set()
    if isinstance(check, Close):
        lines.add(f"{check.what}: does not match the reference")
        lines.update(line.strip() for line in check.explain.splitlines())
    elif isinstance(check, GradCheck):
        lines.add(f"{check.what}: {GRADCHECK_HEADER} (central differences, h=1e-6, float64, random upstream "
                  "gradient)")
    elif isinstance(check, (Accuracy, Metric)):
        lines.update(line.strip() for line in check.reference.splitlines())
    return {line for line in lines if line}


def _is_property(check: Check, block: list[str]) -> bool:
    """A check that tests one property (exact, or a single number such as a flag or a fraction): its
    header and explanation are printed only when that property fails, so they are written for it."""
    return isinstance(check, Close) and (check.exact or any(" 1 of 1 entries differ" in line for line in block))


def specific_lines(message: str, case: Case) -> list[str]:
    """The lines of ``message`` written for this failure (see the module docstring)."""
    fixed: set[str] = set()
    lines = message.splitlines()
    for check in case.checks:
        starts = [k for k, line in enumerate(lines) if line.startswith(f"{check.what}:")]
        for k in starts:
            end = next((j for j in range(k + 1, len(lines)) if not lines[j].startswith(" ")), len(lines))
            if not _is_property(check, lines[k:end]):
                fixed |= _check_lines(check)
        if not starts:
            fixed |= _check_lines(check)
    return [line for line in lines
            if line.strip() and line.strip() not in fixed and not _DATA_LINE.match(line)
            and not _CASE_LINE.match(line.strip())]


def names_the_bug(message: str, case: Case, words: Iterable[str]) -> bool:
    lines = specific_lines(message, case)
    return any(word in line for word in words if word for line in lines)


def load_test_module(lab: str) -> ModuleType:
    path = paths.tests_dir() / "engine" / TEST_FILES[lab]
    spec = importlib.util.spec_from_file_location(f"_diagnosis_{lab}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def patched(lab: str, patches: dict[str, list[tuple[str, str]]], where: Path) -> Path:
    """A copy of the reference with ``patches`` applied (as the tests' ``patched_reference``)."""
    root = where / "submission"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(paths.solutions_dir() / lab, root / lab, ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    for file, edits in patches.items():
        path = root / lab / file
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                raise ValueError(f"{lab}/{file}: the patch does not match exactly once: {old!r}")
            text = text.replace(old, new)
        path.write_text(text)
    return root


def judge_lab(lab: str, only_bugs: Sequence[str] = (), timeout_scale: float = 10.0) -> list[Verdict]:
    module = load_test_module(lab)
    cases = {c.name: c for c in module.LAB.cases}
    fast = list(module.FAST)
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="diagnosis-") as tmp:
        for param in module.BUGS:
            if only_bugs and param.id not in only_bugs:
                continue
            patches, fails, *rest = param.values
            names = tuple(rest[0]) if rest else ()
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                result = grade(module.LAB, patched(lab, patches, Path(tmp)), isolated=False, only=fast,
                               timeout_scale=timeout_scale)
            outputs = {c.name: c.output for c in result.cases if not c.passed}
            failed = [c for c in fast if c in outputs]
            unnamed = [c for c in failed
                       if not names_the_bug(outputs[c], cases[c], (*fails.get(c, ()), *names))]
            verdicts.append(Verdict(param.id, failed, unnamed))
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", choices=sorted(TEST_FILES), help="a lab (default: all)")
    parser.add_argument("--bug", action="append", default=[], help="only these bug ids")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each bug that is not named")
    parser.add_argument("--timeout-scale", type=float, default=10.0,
                        help="multiplies each case's time limit (default 10: on a loaded machine a case that runs "
                             "out of time would be judged on its timeout message, not on its diagnosis)")
    args = parser.parse_args(argv)
    labs = args.lab or sorted(TEST_FILES)
    print(f"{'lab':<5} {'bugs':>4} {'named':>12} {'every case':>12}")
    for lab in labs:
        if lab == "lab5" and importlib.util.find_spec("torch") is None:
            print(f"{lab:<5} skipped: PyTorch is not installed")
            continue
        verdicts = judge_lab(lab, args.bug, args.timeout_scale)
        n = len(verdicts)
        named = sum(v.named for v in verdicts)
        every = sum(v.every_case for v in verdicts)
        print(f"{lab:<5} {n:>4} {named:>4} ({named / max(n, 1):4.0%}) {every:>4} ({every / max(n, 1):4.0%})",
              flush=True)
        if args.verbose:
            for v in verdicts:
                if v.unnamed:
                    tag = "NOT NAMED" if not v.named else "partly"
                    print(f"      {tag:<9} {v.bug}: no failure-specific line names it in {', '.join(v.unnamed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
