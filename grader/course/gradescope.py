"""Gradescope: the autograder zip, and what its ``run_autograder`` does for each submission.

    gradelab gradescope LAB --out autograder.zip           # instructors: build the zip
    python -m grader.course.gradescope --lab LAB --root /autograder   # run_autograder, per submission

The zip holds ``setup.sh`` and ``run_autograder`` (templates in grader/templates/gradescope/)
and the kit they need: the engine, the lab's cases and fixtures, its reference and hidden seeds
(``solutions/<lab>/``: the zip is instructor-side, never give it to students), the generated
stubs and the data.

For each submission, ``run_autograder``:

1. finds the lab in ``<root>/submission``: a ``<lab>/`` folder (at any depth up to three), the
   lab's files flat, or a zip of either; missing files come from the stubs and provided
   earlier labs (``labs/<lab>/<earlier>/``) always from the kit. Symlinks are never followed and
   nothing deeper than 32 folders is read;
2. reports a syntax error (compiled here, never run) or an import error (from the sandboxed
   child) once, as the top-level ``output``, and scores 0;
3. otherwise grades with ``grader.course.submission.grade_submission``, the path every course tool
   shares, in the sandboxed child of ``grader.isolation.sandbox``: bubblewrap when this container
   allows its namespaces, else a plain child process with rlimits that ``run_autograder``
   (``GRADELAB_UID_WITHOUT_BWRAP=1``) has switched to a dedicated unprivileged uid with setpriv,
   after making the kit (``<root>/source``: the reference, ``hidden.toml``, the instructor's
   predictors, the data) readable by root only; the Python environment lives outside it
   (``/opt/gradelab-venv``, see setup.sh). Every process of that uid is killed when grading
   ends (a daemon too). Student code never runs in this process. The top-level output says
   which isolation ran (``isolation_name``);
4. writes ``<root>/results/results.json``: one visible test per case worth the case's points,
   earned only when its public run and every hidden variant pass (the rule of
   ``grader.runner.grade``: the total is the score ``gradelab grade`` gives), and per case with
   hidden variants a 0-point test with ``visibility: "after_due_date"`` saying how they went.
   Messages are plain text (``output_format: "text"``) and name files relative to the lab
   folder: no instructor or temporary path appears in any text. Whatever the upload (an empty
   zip, only symlinks, a folder 1,500 deep) or a failure of the grading itself, a results.json
   is written: a 0 with a message that says what to upload.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader import paths
from grader.authoring import stubs
from grader.course.submission import Options, grade_submission
from grader.isolation.loading import load_cases
from grader.isolation.sandbox import NO_BWRAP_ENV, bwrap_available, isolation_name
from grader.judging.case import Lab
from grader.runner import LabResult, hidden_seeds
from grader.text import printable

from .uploads import find_lab_folder, safe_extract, walk_files

__all__ = ["build_zip", "collect", "run"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "gradescope"


# --------------------------------------------------------------------------- the zip


def build_zip(lab: str, out: Path, root: Path | None = None) -> Path:
    """The autograder zip for ``lab`` (see the module docstring)."""
    root = root or paths.project_root()
    solutions = root / "solutions"
    if not (solutions / lab).is_dir() or not (root / "tests" / lab / "cases.py").is_file():
        raise SystemExit(f"gradelab gradescope: {lab}: no solutions/{lab}/ with tests/{lab}/cases.py")
    out.parent.mkdir(parents=True, exist_ok=True)

    def skip(p: Path) -> bool:
        return "__pycache__" in p.parts or p.suffix == ".pyc" or p.name.startswith(".")

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        def add_text(name: str, text: str, mode: int = 0o644) -> None:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)

        add_text("setup.sh", (TEMPLATES / "setup.sh").read_text(), 0o755)
        add_text("run_autograder", (TEMPLATES / "run_autograder").read_text().replace("@@LAB@@", lab), 0o755)
        for folder in ("grader", f"tests/{lab}", f"solutions/{lab}", "data"):
            for f in sorted((root / folder).rglob("*")):
                if f.is_file() and not skip(f.relative_to(root)) and "templates" not in f.relative_to(root).parts:
                    z.write(f, f.relative_to(root).as_posix())
        for rel, text in sorted(stubs.generate(solutions, root / "labs").items()):
            if rel.parts[0] == lab:
                add_text(f"labs/{rel.as_posix()}", text)
        z.write(root / "pyproject.toml", "pyproject.toml")
    return out


# --------------------------------------------------------------------------- the submission

def what_to_upload(lab: str) -> str:
    return f"upload the {lab}/ folder, the .py files of {lab}/, or a zip of either"


def collect(submission: Path, lab: str, dest: Path, kit: Path) -> str | None:
    """Lays the submission out as ``dest/<lab>/`` over the stubs; returns why it cannot, or None.

    ``kit`` holds ``labs/<lab>/`` (the stubs) and ``solutions/``. The submission is only read:
    symlinks are never followed, nothing deeper than ``MAX_DEPTH`` folders is looked at.
    """
    work = Path(tempfile.mkdtemp(prefix="gradelab-upload-"))
    try:
        top = submission
        zips = [f for f in walk_files(submission, 3) if f.suffix.lower() == ".zip"]
        if find_lab_folder(top, lab) is None and not _flat_files(top) and zips:
            try:
                safe_extract(zips[0], work / "unzipped")
            except (zipfile.BadZipFile, ValueError, OSError, RuntimeError, EOFError) as exc:
                return f"could not unpack {zips[0].name}: {exc}; {what_to_upload(lab)}"
            top = work / "unzipped"
        folder = find_lab_folder(top, lab)
        if folder is None:
            if not _flat_files(top):
                return f"no {lab} code found: {what_to_upload(lab)}"
            folder = top
        shutil.copytree(kit / "labs" / lab, dest / lab)
        for f in walk_files(folder):
            rel = f.relative_to(folder)
            if "__pycache__" not in rel.parts and f.suffix != ".pyc":
                (dest / lab / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest / lab / rel)
        for earlier in stubs._allowed_labs(kit / "solutions", lab):  # provided code: always the kit's
            if (kit / "labs" / lab / earlier).is_dir():
                shutil.rmtree(dest / lab / earlier, ignore_errors=True)
                shutil.copytree(kit / "labs" / lab / earlier, dest / lab / earlier)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _flat_files(top: Path) -> list[Path]:
    return [p for p in top.glob("*.py") if p.is_file() and not p.is_symlink()]


def syntax_errors(package: Path) -> str:
    """Syntax errors of every .py in the package, compiled (never run), named relative to it."""
    problems = []
    for f in sorted(walk_files(package)):
        if f.suffix != ".py":
            continue
        rel = f.relative_to(package.parent).as_posix()
        try:
            compile(f.read_bytes(), rel, "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            line = getattr(exc, "lineno", None)
            text = (getattr(exc, "text", "") or "").rstrip()
            problems.append(f"{rel}" + (f", line {line}" if line else "") + f": {type(exc).__name__}: "
                            f"{getattr(exc, 'msg', exc)}" + (f"\n    {text.strip()}" if text else ""))
    return "\n".join(problems)


# --------------------------------------------------------------------------- grading


def _scrub(text: str, replacements: dict[str, str]) -> str:
    """No instructor or temporary paths: every known folder becomes its short name."""
    for long, short in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(long, short)
    text = re.sub(r"/tmp/gradelab-[\w.-]+/(submission/)?", "", text)
    return re.sub(r"(/[\w.-]+)+/(site-packages|lib/python3\.\d+)/", "<python>/", text)


# run_case names the seed a case failed on: "<case> (hidden variant K) failed:" / "... : your code raised"
_ON_HIDDEN = re.compile(r"^\S+ \(hidden variant \d+\)")


def _tests(lab: Lab, result: LabResult, n_hidden: int) -> list[dict[str, Any]]:
    """One Gradescope test per case, worth the case's points, earned only when its public run and
    every hidden variant pass (the rule of ``grader.runner.grade``, so the total is that score);
    and, for a case with hidden variants, a 0-point test shown after the due date that says how
    they went. Before the due date a case that fails only on a hidden variant says just that."""
    cases = {c.name: c for c in lab.cases}
    tests: list[dict[str, Any]] = []
    for r in result.cases:
        variants = n_hidden if cases[r.name].hidden else 0
        on_hidden = bool(variants) and not r.passed and bool(_ON_HIDDEN.match(r.output))
        shown = (f"{r.name}: passes on its public inputs but fails on a hidden variant (other values, "
                 "shapes or hyperparameters: does your code hard-code something the public inputs happen "
                 "to use?); the details are shown after the due date") if on_hidden else r.output
        common = {"output_format": "text", "tags": [lab.name, r.name], "status": r.status}
        tests.append({"name": r.name, "score": r.score, "max_score": r.max_score, "output": shown,
                      "visibility": "visible", "execution_time": round(r.seconds, 3), **common})
        if variants:
            detail = r.output if on_hidden else (
                f"passed on all {variants} hidden variants" if r.passed else
                "not run on the hidden variants: the case already fails on its public inputs")
            tests.append({"name": f"{r.name} (hidden variants)", "score": 0.0, "max_score": 0.0,
                          "output": detail, "visibility": "after_due_date", **common})
    return tests


@contextmanager
def _without_bwrap(force: bool) -> Iterator[None]:
    """``--no-bwrap``: the sandbox probe answers no for this run (the fallback on a machine with bwrap)."""
    if not force:
        yield
        return
    old = os.environ.get(NO_BWRAP_ENV)
    os.environ[NO_BWRAP_ENV] = "1"
    bwrap_available.cache_clear()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(NO_BWRAP_ENV, None)
        else:
            os.environ[NO_BWRAP_ENV] = old
        bwrap_available.cache_clear()


def _grade(root: Path, lab_name: str, tmp: Path) -> dict[str, Any]:
    lab = load_cases(lab_name, paths.tests_dir())
    verdict: dict[str, Any] = {"score": 0.0, "tests": []}
    problem = collect(root / "submission", lab_name, tmp / "impl", paths.project_root())
    errors = "" if problem else syntax_errors(tmp / "impl" / lab_name)
    if problem or errors:
        verdict["output"] = (problem or f"Your code does not compile, so no case ran:\n{errors}") + \
            f"\n\nScore: 0/{lab.max_score:g}."
        return verdict
    # the one grading path of every course tool (public and hidden seeds, the reference live, the
    # submission's time budget); without bwrap, run_autograder has made the kit unreadable to the
    # child's uid, so grading without the file-system sandbox is this path's design, not a lapse
    result = grade_submission(tmp / "impl", Options(lab_name, allow_unsandboxed=True))
    if result.import_error:
        verdict["output"] = (f"Your package could not be imported, so no case ran:\n{result.import_error}"
                             f"\n\nScore: 0/{lab.max_score:g}.")
        return verdict
    verdict["tests"] = _tests(lab, result, len(hidden_seeds(lab_name)))
    verdict["score"] = round(result.score, 4)
    verdict["output"] = "\n".join([
        f"{lab.title}: {verdict['score']:g}/{lab.max_score:g}. A case earns its points when it passes on its "
        "public inputs and on every hidden variant (other values and shapes); how the hidden variants went "
        "is shown after the due date.", *(f"Note: {n}" for n in result.notes)])
    return verdict


def run(root: Path, lab_name: str, *, force_no_bwrap: bool = False) -> dict[str, Any]:
    """Grades ``<root>/submission`` and writes ``<root>/results/results.json``; returns the verdict.

    Whatever the submission is, a results.json is written: a failure of the grading itself is a 0
    with a message that says what to upload (Gradescope shows only a generic error otherwise)."""
    start = time.perf_counter()
    kit = paths.project_root()
    tmp = Path(tempfile.mkdtemp(prefix="gradelab-gs-"))
    try:
        with _without_bwrap(force_no_bwrap):
            isolation = isolation_name(bwrap_available())
            try:
                verdict = _grade(root, lab_name, tmp)
            except Exception as exc:  # noqa: BLE001 - the student must get a results.json whatever happened
                verdict = {"score": 0.0, "tests": [], "output": (
                    f"This submission could not be graded ({type(exc).__name__}: {str(exc)[:300]}). "
                    f"Please {what_to_upload(lab_name)}; if it is already that, tell your instructor.")}
        verdict["output"] += f"\nStudent code ran in: {isolation}."
        verdict |= {"output_format": "text", "visibility": "visible", "stdout_visibility": "hidden"}
        replacements = {str(tmp / "impl") + "/": "", str(tmp): "", str(kit) + "/": "", str(root) + "/": "",
                        str(kit): "", str(root): ""}
        _scrub_all(verdict, replacements)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    verdict["execution_time"] = round(time.perf_counter() - start, 3)
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(verdict, indent=2) + "\n")
    return verdict


def _scrub_all(verdict: dict[str, Any], replacements: dict[str, str]) -> None:
    verdict["output"] = _scrub(printable(verdict["output"]), replacements)
    for t in verdict["tests"]:
        t["output"] = _scrub(printable(t["output"]), replacements)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_autograder")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--root", default="/autograder")
    parser.add_argument("--no-bwrap", action="store_true", help="skip the sandbox probe (tests the fallback)")
    args = parser.parse_args(argv)
    results = run(Path(args.root), args.lab, force_no_bwrap=args.no_bwrap)
    print(results["output"])
    for t in results["tests"]:
        print(f"  {t['name']:<48} {t['score']:>7g} / {t['max_score']:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
