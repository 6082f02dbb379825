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
   earlier labs (``labs/<lab>/<earlier>/``) always from the kit;
2. reports a syntax error (compiled here, never run) or an import error (from the sandboxed
   child) once, as the top-level ``output``, and scores 0;
3. otherwise grades in the sandboxed child of ``grader.isolation.sandbox``: bubblewrap when this container
   allows its namespaces, else a plain child process with rlimits that ``run_autograder``
   (``GRADELAB_UID_WITHOUT_BWRAP=1``) has switched to a dedicated unprivileged uid with setpriv;
   student code never runs in this process. The top-level output says which (``isolation_name``);
4. writes ``<root>/results/results.json``: one visible test per case on the public seed, and one
   test per hidden variant with ``visibility: "after_due_date"``. A case's points are split
   evenly between its public run and its hidden variants (``gradelab grade`` gives a case's
   points only when all of them pass: on Gradescope each variant earns its share). Messages are
   plain text (``output_format: "text"``) and name files relative to the lab folder: no
   instructor or temporary path appears in any text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader import paths
from grader.authoring import stubs
from grader.isolation.loading import load_cases
from grader.isolation.sandbox import bwrap_available, isolation_name
from grader.judging.case import Case, Lab
from grader.judging.expected import ReferenceExpected
from grader.runner import CaseResult, Sandboxed, hidden_seeds, reference, run_case

__all__ = ["build_zip", "collect", "run"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "gradescope"
_MAX_UNZIPPED = 50 << 20


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


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unzips regular files only, refusing absolute paths, ``..`` and zip bombs."""
    total = 0
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = Path(info.filename)
            if info.is_dir() or name.is_absolute() or ".." in name.parts or "__MACOSX" in name.parts:
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                continue  # a symlink
            total += info.file_size
            if total > _MAX_UNZIPPED:
                raise ValueError(f"the zip unpacks to more than {_MAX_UNZIPPED >> 20} MiB")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _find_lab_folder(top: Path, lab: str, depth: int = 3) -> Path | None:
    if (top / lab).is_dir() and not (top / lab).is_symlink():
        return top / lab
    if depth == 0:
        return None
    for sub in sorted(p for p in top.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "__MACOSX"):
        found = _find_lab_folder(sub, lab, depth - 1)
        if found:
            return found
    return None


def collect(submission: Path, lab: str, dest: Path, kit: Path) -> str | None:
    """Lays the submission out as ``dest/<lab>/`` over the stubs; returns why it cannot, or None.

    ``kit`` holds ``labs/<lab>/`` (the stubs) and ``solutions/``.
    """
    work = Path(tempfile.mkdtemp(prefix="gradelab-upload-"))
    try:
        shutil.copytree(submission, work / "upload", symlinks=True)
        top = work / "upload"
        zips = sorted(top.rglob("*.zip"))
        if _find_lab_folder(top, lab) is None and not list(top.glob("*.py")) and zips:
            try:
                _safe_extract(zips[0], work / "unzipped")
            except (zipfile.BadZipFile, ValueError, OSError) as exc:
                return f"could not unpack {zips[0].name}: {exc}"
            top = work / "unzipped"
        folder = _find_lab_folder(top, lab)
        if folder is None:
            flat = [p for p in top.glob("*.py") if p.is_file() and not p.is_symlink()]
            if not flat:
                return (f"no {lab} code found: upload the {lab}/ folder, the .py files of {lab}/, "
                        "or a zip of either")
            folder = top
        shutil.copytree(kit / "labs" / lab, dest / lab)
        for f in folder.rglob("*"):
            rel = f.relative_to(folder)
            if f.is_file() and not f.is_symlink() and "__pycache__" not in rel.parts and f.suffix != ".pyc":
                (dest / lab / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest / lab / rel)
        for earlier in stubs._allowed_labs(kit / "solutions", lab):  # provided code: always the kit's
            if (kit / "labs" / lab / earlier).is_dir():
                shutil.rmtree(dest / lab / earlier, ignore_errors=True)
                shutil.copytree(kit / "labs" / lab / earlier, dest / lab / earlier)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def syntax_errors(package: Path) -> str:
    """Syntax errors of every .py in the package, compiled (never run), named relative to it."""
    problems = []
    for f in sorted(package.rglob("*.py")):
        rel = f.relative_to(package.parent).as_posix()
        try:
            compile(f.read_bytes(), rel, "exec")
        except (SyntaxError, ValueError) as exc:
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


def _variant(case: Case, k: int) -> Case:
    """The case whose hidden variant 0 is ``case``'s hidden variant ``k`` (same maker rotation)."""
    if not case.hidden_inputs:
        return case
    n = len(case.hidden_inputs)
    return dataclasses.replace(case, hidden_inputs=case.hidden_inputs[k % n:] + case.hidden_inputs[:k % n])


def _tests(lab: Lab, executor: Sandboxed, expected: ReferenceExpected, hidden: Sequence[int]) -> list[dict]:
    tests: list[dict[str, Any]] = []
    for case in lab.cases:
        variants = list(case.hidden_seeds(hidden))
        share = case.points / (1 + len(variants))
        runs: list[tuple[str, CaseResult, str]] = [
            (case.name, run_case(case, executor, expected, [(s, False) for s in case.seeds]), "visible")]
        for k, seed in enumerate(variants):
            r = run_case(_variant(case, k), executor, expected, [(seed, True)])
            r.output = r.output.replace("(hidden variant 0)", f"(hidden variant {k})")
            runs.append((f"{case.name} (hidden variant {k})", r, "after_due_date"))
        for name, r, visibility in runs:
            tests.append({"name": name, "score": share if r.passed else 0.0,
                          "max_score": share, "status": r.status, "output": r.output,
                          "output_format": "text", "visibility": visibility, "tags": [lab.name, case.name],
                          "execution_time": round(r.seconds, 3), "import_error": getattr(r, "import_error", "")})
    return tests


def run(root: Path, lab_name: str, *, force_no_bwrap: bool = False) -> dict[str, Any]:
    """Grades ``<root>/submission`` and writes ``<root>/results/results.json``; returns the verdict."""
    start = time.perf_counter()
    kit = paths.project_root()
    lab = load_cases(lab_name, paths.tests_dir())
    use_bwrap = bwrap_available() and not force_no_bwrap
    isolation = isolation_name(use_bwrap)
    verdict: dict[str, Any] = {"score": 0.0, "output_format": "text", "visibility": "visible",
                               "stdout_visibility": "hidden", "tests": []}
    tmp = Path(tempfile.mkdtemp(prefix="gradelab-gs-"))
    try:
        problem = collect(root / "submission", lab_name, tmp / "impl", kit)
        errors = "" if problem else syntax_errors(tmp / "impl" / lab_name)
        if problem or errors:
            verdict["output"] = (problem or f"Your code does not compile, so no case ran:\n{errors}") + \
                f"\n\nScore: 0/{lab.max_score:g}."
        else:
            executor = Sandboxed(tmp / "impl", lab_name, use_bwrap=use_bwrap)
            try:
                tests = _tests(lab, executor, ReferenceExpected(reference(lab_name)), hidden_seeds(lab_name))
            finally:
                executor.close()
            import_error = next((t["import_error"] for t in tests if t["import_error"]), "")
            for t in tests:
                del t["import_error"]
            if import_error:
                verdict["output"] = (f"Your package could not be imported, so no case ran:\n{import_error}"
                                     f"\n\nScore: 0/{lab.max_score:g}.")
            else:
                verdict["tests"] = tests
                verdict["score"] = round(sum(t["score"] for t in tests), 4)
                verdict["output"] = (f"{lab.title}: {verdict['score']:g}/{lab.max_score:g}. Hidden variants of "
                                     "every case are shown after the due date.")
        verdict["output"] += f"\nStudent code ran in: {isolation}."
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
    verdict["output"] = _scrub(verdict["output"], replacements)
    for t in verdict["tests"]:
        t["output"] = _scrub(t["output"], replacements)


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
