"""``gradelab release``: the repository students get, and the check that it leaks nothing.

    gradelab release LAB [LAB...] --out DIR [--classroom] [--no-git]
    gradelab release --check DIR

A release is a fresh repository (one commit, none of the instructor's history) holding:

    labs/<lab>/                  the stubs, generated from solutions/ (never copied from labs/)
    tests/<lab>/                 the lab's cases, its pytest module and its public fixtures
    grader/                      the engine: ``gradelab``, the pytest plugin, ``python -m grader.course.ci``
    data/                        the data sets
    notebooks/<lab>.ipynb        a notebook per lab (no solution code: nbgrader can release it as is)
    pyproject.toml, conftest.py  the kit, installable (``pip install -e .``); the pytest plugin's loader
    scripts/setup.sh, ci.sh      the two commands of the student README, and what CI runs
    .github/workflows/gradelab.yml   CI: score table, PR comment, badge (and Classroom's reporter)
    README.md                    the student README

and never ``solutions/``, ``hidden.toml``, ``examples/``, ``tests/engine/`` (its buggy
submissions are patches of the reference, so they hold solution lines verbatim) or
``tests/conftest.py`` (the engine tests' fixtures).

The check scans EVERY file of the release, whatever its type or place (notebook cells, zip and
gzip members included), for code from any lab's solution regions: line by line with normalised
whitespace (the leak index of ``grader.authoring.stubs``), and multi-line statements with all whitespace
removed, so re-wrapping a block does not hide it. The only solution code allowed is a provided
lab (``solutions/<lab>/lab.toml``: ``provides = ["lab1"]``) inside ``labs/<lab>/<provided>/``,
and only when the provided lab is not itself a task of the release: releasing lab2 ships Lab 1's
reference (after Lab 1's deadline); releasing lab1 and lab2 together would hand Lab 1's solution
to Lab 1's students, so ``release`` refuses it.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grader import paths
from grader.authoring import stubs

__all__ = ["ReleaseError", "build", "check", "main_check"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "release"
WORKFLOW = Path(".github/workflows/gradelab.yml")
# Paths a release must never contain (relative, as posix prefixes).
FORBIDDEN = ("solutions/", "examples/", "tests/engine/", "tests/conftest.py", ".ci/")
# A multi-line statement shorter than this without whitespace is too generic to call a leak.
MIN_BLOCK_CHARS = 24
_IGNORED_DIRS = {".git", "__pycache__", ".venv", ".pytest_cache", ".gradelab", ".ipynb_checkpoints"}


class ReleaseError(Exception):
    """The release cannot be built (a bad lab list, an existing folder, a leak)."""


# --------------------------------------------------------------------------- the leak index


@dataclass(frozen=True)
class Secret:
    """Solution code to look for: its normalised form and where it comes from."""

    lab: str
    origin: str  # "solutions/lab1/layers.py:42 (ReLU.forward)"
    text: str


def _squash(text: str) -> str:
    """Code without comments and without any whitespace: re-wrapping cannot change it."""
    return "".join("".join(stubs._strip_comment(line).split()) for line in text.splitlines())


def _block_secrets(path: Path, solutions: Path, regions: list[stubs.Region]) -> list[Secret]:
    """Multi-line statements of each region (and each whole region), squashed."""
    found: list[Secret] = []
    lab = path.relative_to(solutions).parts[0]
    for region in regions:
        body = textwrap.dedent("\n".join(region.lines))
        where = f"{path.relative_to(solutions.parent).as_posix()}:{region.start + 1} ({region.qualname})"
        found.append(Secret(lab, where, _squash(body)))
        try:
            tree = ast.parse(body)
        except SyntaxError:
            continue  # e.g. a region that is part of a larger statement: the line index still covers it
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and (node.end_lineno or node.lineno) > node.lineno:
                segment = ast.get_source_segment(body, node) or ""
                found.append(Secret(lab, where, _squash(segment)))
    return [s for s in found if len(s.text) >= MIN_BLOCK_CHARS]


@dataclass
class Index:
    lines: dict[str, stubs._Origin]
    blocks: list[Secret]
    provides: dict[str, set[str]]  # lab -> labs it provides (transitively)


def leak_index(solutions: Path) -> Index:
    """Every lab's solution code, as lines and as squashed blocks, minus what stubs keep anyway."""
    problems: list[str] = []
    sources = stubs._parse_sources(solutions, problems)
    if problems:
        raise ReleaseError("the reference does not parse:\n" + "\n".join(problems))
    lines = stubs._solution_index(solutions, sources)
    copies = stubs._all_provided(solutions)  # provided copies hold a whole reference: not "public"
    generated = stubs.generate(solutions, solutions.parent / ".gradelab-none")
    public = "\n".join(_squash(text) for rel, text in generated.items() if rel not in copies)
    blocks = [s for path, regions in sources.items() for s in _block_secrets(path, solutions, regions)
              if s.text not in public]
    labs = [p.name for p in solutions.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    return Index(lines, blocks, {lab: stubs._allowed_labs(solutions, lab) for lab in labs})


# --------------------------------------------------------------------------- scanning


def _texts(path: Path, data: bytes) -> list[tuple[str, str]]:
    """(where, text) for a file: notebook cells, archive members and gzip contents unpacked."""
    name = path.name
    if name.endswith(".ipynb"):
        try:
            nb = json.loads(data)
            return [(f"{path}[cell {i}]", "".join(c.get("source", "")) if isinstance(c.get("source"), list)
                     else str(c.get("source", ""))) for i, c in enumerate(nb.get("cells", []))]
        except (ValueError, AttributeError):
            pass
    if name.endswith((".zip", ".npz")) and zipfile.is_zipfile(io.BytesIO(data)):
        out: list[tuple[str, str]] = []
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                out += _texts(Path(f"{path}!{member}"), z.read(member))
        return out
    if name.endswith(".gz"):
        try:
            return _texts(Path(str(path)[:-3]), gzip.decompress(data))
        except (OSError, EOFError):
            pass
    return [(str(path), data.decode("utf-8", errors="replace"))]


def _allowed(rel: Path, lab: str, released: set[str], index: Index) -> bool:
    """Solution code of ``lab`` is allowed only in labs/<task>/<lab>/ of a lab that provides it,
    and only when ``lab`` itself is not a task of this release."""
    parts = rel.parts
    return (len(parts) > 3 and parts[0] == "labs" and parts[2] == lab and lab not in released
            and lab in index.provides.get(parts[1], set()))


def scan(root: Path, index: Index, released: set[str]) -> list[str]:
    """Leaks of solution code in any file under ``root`` (``.git`` and caches aside)."""
    problems: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if _IGNORED_DIRS & set(rel.parts[:-1]):
            continue
        for where, text in _texts(rel, path.read_bytes()):
            for row, line in enumerate(text.splitlines(), start=1):
                origin = index.lines.get(stubs._normalize(line))
                if origin is not None and not _allowed(rel, origin.path.split("/")[1], released, index):
                    problems.append(f"leak: {where}:{row} contains solution code from {origin.path}:{origin.line} "
                                    f"({origin.qualname}): {line.strip()}")
            squashed = _squash(text)
            for secret in index.blocks:
                if secret.text in squashed and not _allowed(rel, secret.lab, released, index):
                    problems.append(f"leak: {where} contains a multi-line solution block from {secret.origin}")
    return list(dict.fromkeys(problems))


def _released_labs(root: Path) -> set[str]:
    return {p.name for p in (root / "labs").iterdir() if p.is_dir()} if (root / "labs").is_dir() else set()


def check(root: Path, solutions: Path | None = None) -> list[str]:
    """Everything wrong with ``root`` as a student release; [] when it is clean."""
    solutions = solutions or paths.solutions_dir()
    if not solutions.is_dir():
        raise ReleaseError(f"no reference at {solutions}: the check looks for its solution code")
    problems: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix() + ("/" if path.is_dir() else "")
        if _IGNORED_DIRS & set(Path(rel).parts):
            continue
        if rel.startswith(FORBIDDEN):
            problems.append(f"{rel} must not be in a release (instructor-only)")
        elif path.name == "hidden.toml":
            problems.append(f"{rel}: hidden seeds must not be in a release")
    released = _released_labs(root)
    index = leak_index(solutions)
    for lab in sorted(released):
        both = index.provides.get(lab, set()) & released
        if both:
            problems.append(f"labs/{lab}/ contains the reference of {', '.join(sorted(both))} (provided code), "
                            f"which is also a task of this release: its students would get its solution")
    problems += scan(root, index, released)
    if (root / ".git").exists():
        problems += _git_problems(root)
    return problems


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def _git_problems(root: Path) -> list[str]:
    try:
        commits = int(_git(root, "rev-list", "--count", "--all").strip())
        dirty = _git(root, "status", "--porcelain", "--ignored=no").strip()
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return [f".git: cannot read the history ({exc})"]
    problems = []
    if commits != 1:
        problems.append(f".git has {commits} commits: a release has exactly one (no instructor history)")
    if dirty:
        problems.append(".git: the working tree differs from the commit (was the release edited after building?)")
    return problems


# --------------------------------------------------------------------------- building


def _render(name: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = re.findall(r"@@\w+@@", text)
    assert not leftover, f"template {name}: unfilled {leftover}"
    return text


def _needs_torch(solutions: Path, tests: Path, lab: str) -> bool:
    """A lab that imports torch in its reference or cases needs the torch extra."""
    files = [*(solutions / lab).rglob("*.py"), *(tests / lab).rglob("*.py")]
    return any(re.search(r"^\s*(import|from)\s+torch\b", f.read_text(errors="replace"), re.M) for f in files)


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"), dirs_exist_ok=True)


def build(labs: list[str], out: Path, *, classroom: bool = False, git: bool = True,
          root: Path | None = None, log=print) -> list[str]:
    """Builds the release of ``labs`` into ``out`` (which must not exist or be empty) and checks it.

    Returns warnings (e.g. provided solutions shipped). Raises ReleaseError, and removes ``out``,
    when the check finds anything.
    """
    root = root or paths.project_root()
    solutions, tests = root / "solutions", root / "tests"
    if not labs:
        raise ReleaseError("name at least one lab")
    for lab in labs:
        if not (solutions / lab).is_dir() or not (tests / lab / "cases.py").is_file():
            raise ReleaseError(f"{lab}: no solutions/{lab}/ with tests/{lab}/cases.py")
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} exists and is not empty: a release goes into a new folder")
    warnings = []
    for lab in labs:
        provided = stubs._allowed_labs(solutions, lab)
        clash = sorted(provided & set(labs))
        if clash:
            raise ReleaseError(f"{lab} provides {', '.join(clash)} complete (labs/{lab}/{clash[0]}/ is its reference): "
                               f"releasing them together would give {clash[0]}'s students its solution. "
                               f"Release {', '.join(clash)} first and {lab} after {clash[0]}'s deadline.")
        if provided:
            warnings.append(f"{lab} contains the reference solution of {', '.join(sorted(provided))} in "
                            f"labs/{lab}/ (provided code): release it only after their deadline")
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write(labs, out, root, classroom)
        problems = check(out, solutions)
        if problems:
            raise ReleaseError("the release failed its leak check:\n" + "\n".join(problems))
        if git and shutil.which("git"):
            _git_init(out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    for w in warnings:
        log(f"warning: {w}")
    return warnings


def _write(labs: list[str], out: Path, root: Path, classroom: bool) -> None:
    solutions, tests = root / "solutions", root / "tests"
    for rel, text in stubs.generate(solutions, out / "labs").items():
        if rel.parts[0] in labs:
            target = out / "labs" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    for lab in labs:
        _copy(tests / lab, out / "tests" / lab)
    for name in sorted(engine_modules(root / "grader", [tests / lab for lab in labs])):
        (out / "grader" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "grader" / name, out / "grader" / name)
    if (root / "data").is_dir():
        _copy(root / "data", out / "data")
    shutil.copyfile(root / "pyproject.toml", out / "pyproject.toml")
    if (root / "conftest.py").is_file():  # loads the pytest plugin (and says so outside the environment)
        shutil.copyfile(root / "conftest.py", out / "conftest.py")
    torch = any(_needs_torch(solutions, tests, lab) for lab in labs)
    values = {"LABS": " ".join(labs), "FIRST_LAB": labs[0], "LAB_LIST": ", ".join(f"`{lab}`" for lab in labs),
              "TITLE": "Deep-learning labs: " + ", ".join(labs),
              "BADGES": " ".join(f"![{lab} score](../../raw/badges/{lab}.svg)" for lab in labs),
              "INSTALL_TARGET": ".[torch]" if torch else "."}
    (out / "scripts").mkdir()
    for name in ("setup.sh", "ci.sh"):
        (out / "scripts" / name).write_text(_render(name, values))
        (out / "scripts" / name).chmod(0o755)
    for name in student_scripts(solutions, labs):  # what the handouts tell students to run
        shutil.copyfile(root / "scripts" / name, out / "scripts" / name)
    (out / "README.md").write_text(_render("README.md", values))
    (out / ".gitignore").write_text(_render("gitignore", values))
    step = _render("classroom_step.yml", values) if classroom else ""
    (out / WORKFLOW).parent.mkdir(parents=True)
    (out / WORKFLOW).write_text(_render("workflow.yml", {**values, "CLASSROOM_STEP": step}).rstrip() + "\n")
    try:
        from .notebooks import write_notebook
    except ImportError:  # pragma: no cover - the notebooks module is part of the engine
        return
    for lab in labs:
        write_notebook(lab, out / "notebooks" / f"{lab}.ipynb", root=root)


ENTRY_MODULES = ("__init__.py", "cli.py", "pytest_support.py", "course/ci.py", "course/notebooks.py",
                 "isolation/worker.py")


def _module_file(engine: Path, dotted: list[str]) -> str | None:
    """The engine file (relative, posix) of ``grader.<dotted>``: a module or a package's __init__."""
    if not dotted:
        return "__init__.py"
    for rel in ("/".join(dotted) + ".py", "/".join(dotted) + "/__init__.py"):
        if (engine / rel).is_file():
            return rel
    return None


def _imported(engine: Path, rel: str | None, source: str) -> set[str]:
    """Engine files (relative to ``engine``) that ``source`` imports, relatively or as ``grader.x``,
    with the ``__init__.py`` of every package on the way. ``rel`` is the importing file's place in
    the engine (None for a file outside it, e.g. a lab's tests)."""
    here = Path(rel).parent.parts if rel else ()
    targets: list[list[str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if rel is None:
                    continue
                base = list(here[:len(here) - (node.level - 1)]) if node.level > 1 else list(here)
            elif node.module == "grader" or (node.module or "").startswith("grader."):
                base = []
            else:
                continue
            mod = (node.module or "").split(".") if node.module else []
            if not node.level:
                mod = mod[1:]  # drop "grader"
            targets.append(base + mod)
            targets += [base + mod + [a.name] for a in node.names]  # a submodule imported by name
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".")[1:] for a in node.names if a.name.startswith("grader.")]
    found: set[str] = set()
    for dotted in targets:
        for i in range(len(dotted) + 1):  # every package on the way, then the module itself
            f = _module_file(engine, dotted[:i])
            if f is not None:
                found.add(f)
    return found


def engine_modules(engine: Path, lab_tests: list[Path]) -> set[str]:
    """The engine files (relative paths) a release needs: the entry points, what the labs' tests
    import, and everything those import. Modules only another lab needs stay out (they may hold
    its solution)."""
    todo = {m for m in ENTRY_MODULES if (engine / m).is_file()}
    for folder in lab_tests:
        for f in folder.glob("*.py"):
            todo |= _imported(engine, None, f.read_text())
    done: set[str] = set()
    while todo:
        name = todo.pop()
        done.add(name)
        todo |= _imported(engine, name, (engine / name).read_text()) - done
    return done


def student_scripts(solutions: Path, labs: list[str]) -> list[str]:
    """The kit's ``scripts/`` a release ships: those each lab's handout tells students to run,
    named in ``solutions/<lab>/lab.toml`` (``scripts = ["measure_accuracy.py"]``)."""
    names: list[str] = []
    for lab in labs:
        config = solutions / lab / stubs.LAB_CONFIG
        if config.is_file():
            with open(config, "rb") as handle:
                found = tomllib.load(handle).get("scripts", [])
            if not isinstance(found, list) or not all(isinstance(n, str) and "/" not in n for n in found):
                raise ReleaseError(f"{lab}/{stubs.LAB_CONFIG}: scripts must be a list of file names in scripts/")
            names += [n for n in found if n not in names]
    return names


def _git_init(out: Path) -> None:
    who = ["-c", "user.name=gradelab release", "-c", "user.email=release@gradelab.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    subprocess.run(["git", "-C", str(out), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(out), *who, "commit", "-q", "-m", "Lab release"], check=True)


def main_check(root: Path) -> int:
    """``gradelab release --check DIR``: 0 clean, 1 problems."""
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s): {root} must not be given to students")
        return 1
    n = sum(1 for p in root.rglob("*") if p.is_file() and not (_IGNORED_DIRS & set(p.relative_to(root).parts)))
    print(f"{root}: {n} files scanned, no solution code, no instructor-only files")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_check(Path(sys.argv[1])))
