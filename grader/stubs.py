"""solutions/ -> labs/: generating the student stubs from the reference, and checking them.

The reference solutions are the single source of truth; the student stubs are generated from
them so the two can never drift. Each student task is marked in the reference with nbgrader's
syntax, inside a function body::

    def forward(self, x):
        '''ReLU: y = max(x, 0) elementwise.'''
        # Hint: np.maximum does not modify x.
        ### BEGIN SOLUTION
        return np.maximum(x, 0.0)
        ### END SOLUTION

and the stub keeps everything outside the region byte for byte while the region itself becomes::

        # TODO: your code here (see the docstring above).
        raise NotImplementedError("ReLU.forward: not implemented yet")

A marker is a comment alone on its line reading ``BEGIN SOLUTION`` / ``END SOLUTION`` after one
or more ``#``. Near misses (``# begin solution``, ``### END SOLUTIONS``) are errors, not comments:
silently ignoring a misspelt marker would release the reference code.

Release rule
------------
For every lab folder ``solutions/<lab>/``, walked recursively with the same rules in subfolders:

* ``*.py`` files are released as stubs (``make_stub``);
* ``*.md`` files (the handouts) are copied verbatim;
* every other file (e.g. ``hidden.toml`` with the hidden test seeds) is instructor-only and is
  never released;
* ``__pycache__`` folders and dotfiles (and dot-folders) are ignored.

Files directly in ``solutions/`` (outside any lab folder) are not released. ``labs/`` belongs to
the generator: ``write`` deletes whatever in it ``generate`` no longer produces, and ``check``
reports it (``__pycache__`` and ``*.pyc`` aside, which Python creates when students run code).

``check`` also looks for leaks: a line of solution-region code anywhere in labs/. A stale or
hand-edited stub is caught by the drift check, but a solution line pasted into another file
(or into a handout) would not be, and that is the mistake that costs a course its exercises.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Region", "StubError", "check", "generate", "make_stub", "run", "solution_regions", "write"]

_BEGIN = re.compile(r"#+\s*BEGIN SOLUTION")
_END = re.compile(r"#+\s*END SOLUTION")
# Anything a person could have meant as a marker: wrong case, plural, underscores, punctuation.
_NEAR_MISS = re.compile(r"#+\s*(begin|end)[\s_-]*solutions?\W*", re.IGNORECASE)

TODO_COMMENT = "# TODO: your code here (see the docstring above)."
STUB_SUFFIX = ".py"
HANDOUT_SUFFIX = ".md"
# Normalized solution lines shorter than this (``return out``, ``pass``, ``else:``) occur in any
# code; flagging them would bury real leaks under noise.
MIN_LEAK_CHARS = 12
_REGENERATE = "run `gradelab stubs`"

_Function = ast.FunctionDef | ast.AsyncFunctionDef


class StubError(ValueError):
    """A reference source whose solution markers cannot be turned into a working stub."""

    def __init__(self, filename: str, line: int, problem: str) -> None:
        super().__init__(f"{filename}:{line}: {problem}")
        self.filename = filename
        self.line = line
        self.problem = problem

    def __reduce__(self) -> tuple[type[StubError], tuple[str, int, str]]:
        # The default would call StubError(message) and fail, e.g. crossing a process boundary.
        return (type(self), (self.filename, self.line, self.problem))


@dataclass(frozen=True)
class Region:
    """One ``BEGIN SOLUTION`` ... ``END SOLUTION`` region of a reference source.

    ``start`` and ``end`` are the 1-based line numbers of the two markers; ``lines`` is the text
    between them, one entry per line without its line ending. ``qualname`` is the enclosing
    function's ``__qualname__`` (``ReLU.forward``, ``outer.<locals>.inner``).
    """

    qualname: str
    start: int
    end: int
    lines: tuple[str, ...]


# --------------------------------------------------------------------------- parsing


def _split_lines(source: str) -> list[str]:
    """Lines with their endings, split exactly where Python's own tokenizer splits them.

    ``str.splitlines`` would also split at form feeds and Unicode separators, which Python does
    not treat as line breaks, so the line numbers would disagree with ``ast``.
    """
    return io.StringIO(source, newline="").readlines()


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename)
    except SyntaxError as error:
        raise StubError(filename, error.lineno or 1, f"not valid Python: {error.msg}") from None
    except ValueError as error:  # e.g. null bytes
        raise StubError(filename, 1, f"not valid Python: {error}") from None


def _markers(lines: list[str], filename: str) -> list[tuple[int, str]]:
    """(line, "BEGIN" | "END") for every marker, in order.

    Markers are found with ``tokenize`` so that text inside strings (a docstring explaining the
    markers, say) is never mistaken for one.
    """
    found: list[tuple[int, str]] = []
    try:
        for token in tokenize.generate_tokens(iter(lines).__next__):
            if token.type != tokenize.COMMENT:
                continue
            text = token.string.strip()
            row, col = token.start
            if _BEGIN.fullmatch(text):
                kind = "BEGIN"
            elif _END.fullmatch(text):
                kind = "END"
            elif _NEAR_MISS.fullmatch(text):
                raise StubError(
                    filename,
                    row,
                    f"{text!r} looks like a solution marker but is not one; "
                    "write exactly '### BEGIN SOLUTION' or '### END SOLUTION'",
                )
            else:
                continue
            if token.line[:col].strip():
                raise StubError(filename, row, f"{text!r} must be on a line of its own")
            found.append((row, kind))
    except tokenize.TokenError as error:
        raise StubError(filename, error.args[1][0], f"cannot tokenize: {error.args[0]}") from None
    return found


def _functions(tree: ast.Module) -> list[tuple[_Function, str]]:
    """Every function in the module with its ``__qualname__``, as Python would compute it."""
    found: list[tuple[_Function, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((child, prefix + child.name))
                visit(child, f"{prefix}{child.name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _enclosing_function(
    functions: list[tuple[_Function, str]], lines: list[str], code_rows: list[int], indent: str
) -> str | None:
    """The qualname of the innermost function whose body holds the region, or None.

    The region's code must lie within the body, and the markers must be indented deeper than the
    ``def``: a marker at the ``def``'s own level would put the generated ``raise`` at module or
    class level, where it would fire at import time (and might even compile).
    """
    first, last = code_rows[0], code_rows[-1]
    best: tuple[_Function, str] | None = None
    for node, qualname in functions:
        def_indent = _indent(lines[node.lineno - 1])
        inside = node.body[0].lineno <= first and last <= (node.end_lineno or node.lineno)
        deeper = indent.startswith(def_indent) and len(indent) > len(def_indent)
        if inside and deeper and (best is None or node.lineno > best[0].lineno):
            best = (node, qualname)
    return None if best is None else best[1]


def _region(
    lines: list[str], functions: list[tuple[_Function, str]], start: int, end: int, filename: str
) -> Region:
    indent = _indent(lines[start - 1])
    if _indent(lines[end - 1]) != indent:
        raise StubError(
            filename, end, f"END SOLUTION is indented differently from its BEGIN SOLUTION (line {start})"
        )
    body = tuple(line.rstrip("\r\n") for line in lines[start : end - 1])
    code_rows = [
        start + 1 + i for i, text in enumerate(body) if text.strip() and not text.lstrip().startswith("#")
    ]
    if not code_rows:
        raise StubError(filename, start, f"empty solution region (no code before END SOLUTION at line {end})")
    qualname = _enclosing_function(functions, lines, code_rows, indent)
    if qualname is None:
        raise StubError(
            filename,
            start,
            "solution region is not inside a function body; at module or class level the stub's "
            "`raise NotImplementedError` would fail at import",
        )
    return Region(qualname, start, end, body)


def solution_regions(source: str, filename: str = "<string>") -> list[Region]:
    """The solution regions of a reference source, in order; [] if it has no markers.

    Raises StubError (``"<filename>:<line>: <problem>"``) for invalid Python, a misspelt marker,
    BEGIN without END, END without BEGIN, nested regions, markers at different indentation, an
    empty region, or a region not entirely inside a function body.
    """
    tree = _parse(source, filename)
    lines = _split_lines(source)
    markers = _markers(lines, filename)
    if not markers:
        return []
    functions = _functions(tree)
    regions: list[Region] = []
    open_at: int | None = None
    for row, kind in markers:
        if kind == "BEGIN":
            if open_at is not None:
                raise StubError(
                    filename,
                    row,
                    f"BEGIN SOLUTION inside the region opened at line {open_at} (regions cannot nest)",
                )
            open_at = row
        elif open_at is None:
            raise StubError(filename, row, "END SOLUTION without a BEGIN SOLUTION before it")
        else:
            regions.append(_region(lines, functions, open_at, row, filename))
            open_at = None
    if open_at is not None:
        raise StubError(filename, open_at, "BEGIN SOLUTION without a matching END SOLUTION")
    return regions


# --------------------------------------------------------------------------- stubbing


def _apply(source: str, regions: list[Region], filename: str) -> str:
    """Replace each region (markers included) with the TODO comment and the ``raise``."""
    if not regions:
        return source
    lines = _split_lines(source)
    out: list[str] = []
    origin: list[int] = []  # source line of each output line, to report compile errors usefully
    row = 1
    for region in regions:
        out += lines[row - 1 : region.start - 1]
        origin += range(row, region.start)
        begin = lines[region.start - 1]
        indent = _indent(begin)
        ending = begin[len(begin.rstrip("\r\n")) :] or "\n"
        out.append(f"{indent}{TODO_COMMENT}{ending}")
        out.append(f'{indent}raise NotImplementedError("{region.qualname}: not implemented yet"){ending}')
        origin += [region.start, region.start]
        row = region.end + 1
    out += lines[row - 1 :]
    origin += range(row, len(lines) + 1)
    stub = "".join(out)
    try:
        # dont_inherit: this module's ``from __future__`` imports must not leak into the check.
        compile(stub, filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        stub_line = error.lineno or 1
        line = origin[min(stub_line, len(origin)) - 1] if origin else 1
        raise StubError(
            filename,
            line,
            f"the generated stub does not compile ({error.msg}, stub line {stub_line}); "
            "a solution region must cover whole statements",
        ) from None
    return stub


def make_stub(source: str, filename: str = "<string>") -> str:
    """The student stub of a reference source: every solution region replaced by a TODO.

    Each region, from its ``BEGIN SOLUTION`` line through its ``END SOLUTION`` line, becomes two
    lines at the BEGIN line's indentation (tabs or spaces as written)::

        # TODO: your code here (see the docstring above).
        raise NotImplementedError("<qualname>: not implemented yet")

    Everything else is kept byte for byte, line endings included; a source without markers is
    returned unchanged. Raises StubError for a malformed source or a stub that does not compile.
    """
    return _apply(source, solution_regions(source, filename), filename)


# --------------------------------------------------------------------------- the release


def _ignored(rel: Path) -> bool:
    return any(part == "__pycache__" or part.startswith(".") for part in rel.parts)


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder``, relative to it, sorted."""
    if not folder.is_dir():
        return []
    return sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())


def _release_plan(solutions: Path) -> tuple[dict[Path, Path], list[Path]]:
    """(released, instructor_only): released maps a path relative to labs/ to its source file;
    instructor_only lists the files in lab folders that the rule keeps out of the release."""
    released: dict[Path, Path] = {}
    instructor_only: list[Path] = []
    for lab in sorted(solutions.iterdir()):
        if not lab.is_dir() or _ignored(Path(lab.name)):
            continue
        for rel in _files(lab):
            if _ignored(rel):
                continue
            key = lab.name / rel
            if rel.suffix in (STUB_SUFFIX, HANDOUT_SUFFIX):
                released[key] = solutions / key
            else:
                instructor_only.append(key)
    return released, instructor_only


def _labs_files(labs: Path) -> set[Path]:
    """Files in labs/ that the generator answers for: all but ``__pycache__`` and ``*.pyc``."""
    return {rel for rel in _files(labs) if "__pycache__" not in rel.parts and rel.suffix != ".pyc"}


def _read(path: Path) -> str:
    # newline="": keep \r\n as written, so "byte for byte" holds on every platform.
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _show(path: Path, base: Path) -> str:
    """``solutions/lab1/layers.py`` rather than an absolute path, for messages."""
    return f"{base.name}/{path.relative_to(base).as_posix()}"


def _check_layout(solutions: Path, labs: Path) -> None:
    """Refuse overlapping folders: ``write`` would overwrite the reference with stubs."""
    source, release = solutions.resolve(), labs.resolve()
    if source.is_relative_to(release) or release.is_relative_to(source):
        raise ValueError(f"solutions ({solutions}) and labs ({labs}) must be separate folders")


def _render(source_path: Path, solutions: Path) -> str:
    text = _read(source_path)
    if source_path.suffix == STUB_SUFFIX:
        return make_stub(text, _show(source_path, solutions))
    return text


def generate(solutions: Path, labs: Path) -> dict[Path, str]:
    """Path (relative to ``labs``) -> text of every file the release should contain.

    Follows the release rule in the module docstring; raises StubError for the first malformed
    reference source, before anything is written. ``labs`` is only checked not to overlap
    ``solutions``: the release does not depend on what labs/ holds.
    """
    _check_layout(solutions, labs)
    released, _ = _release_plan(solutions)
    return {rel: _render(source, solutions) for rel, source in released.items()}


def _sync(solutions: Path, labs: Path) -> tuple[list[Path], list[Path]]:
    """Make labs/ match generate(): (paths written, paths deleted)."""
    release = generate(solutions, labs)  # everything generated first: a StubError writes nothing
    written: list[Path] = []
    for rel, text in release.items():
        target = labs / rel
        try:
            if _read(target) == text:
                continue  # unchanged files keep their mtime, and the report stays short
        except (OSError, UnicodeDecodeError):
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        written.append(target)
    deleted: list[Path] = []
    for rel in sorted(_labs_files(labs) - release.keys()):
        stale = labs / rel
        stale.unlink()
        deleted.append(stale)
        for folder in stale.parents:  # drop folders the deletion emptied, up to labs/ itself
            if folder == labs or any(folder.iterdir()):
                break
            folder.rmdir()
    return written, deleted


def write(solutions: Path, labs: Path) -> list[Path]:
    """Write the release into ``labs`` and delete files there that generate() no longer makes.

    Returns the paths written: files created or changed (unchanged files are not rewritten).
    ``__pycache__`` folders and ``*.pyc`` files in labs/ are left alone.
    """
    written, _ = _sync(solutions, labs)
    return written


# --------------------------------------------------------------------------- checking


def _first_difference(actual: str, expected: str) -> int:
    """1-based number of the first line where the two texts differ."""
    a, e = _split_lines(actual), _split_lines(expected)
    for number, (x, y) in enumerate(zip(a, e, strict=False), start=1):
        if x != y:
            return number
    return min(len(a), len(e)) + 1


def _strip_comment(line: str) -> str:
    """The line without a trailing ``#`` comment (a ``#`` inside quotes does not count)."""
    quote = ""
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:i]
    return line


def _normalize(line: str) -> str:
    """What makes two lines "the same code": no comment, no surrounding or repeated spaces."""
    return " ".join(_strip_comment(line).split())


@dataclass(frozen=True)
class _Origin:
    path: str
    line: int
    qualname: str


def _solution_index(solutions: Path, sources: dict[Path, list[Region]]) -> dict[str, _Origin]:
    """Normalized solution line -> where it comes from, leaving out lines that mean nothing.

    Left out: blank and comment-only lines, lines too short to be specific, and lines that also
    occur outside every region in the reference (provided code that the stub legitimately keeps).
    """
    outside: set[str] = set()
    index: dict[str, _Origin] = {}
    for path, regions in sources.items():
        lines = _split_lines(_read(path))
        in_region: set[int] = set()
        for region in regions:
            in_region.update(range(region.start, region.end + 1))
            for offset, text in enumerate(region.lines, start=region.start + 1):
                key = _normalize(text)
                if len(key) >= MIN_LEAK_CHARS:
                    index.setdefault(key, _Origin(_show(path, solutions), offset, region.qualname))
        outside.update(_normalize(text) for row, text in enumerate(lines, start=1) if row not in in_region)
    return {key: origin for key, origin in index.items() if key not in outside}


def _leaks(labs: Path, index: dict[str, _Origin], present: set[Path]) -> list[str]:
    problems = []
    for rel in sorted(present):
        path = labs / rel
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        for row, line in enumerate(_split_lines(text), start=1):
            origin = index.get(_normalize(line))
            if origin is not None:
                problems.append(
                    f"leak: {_show(path, labs)}:{row} contains solution code from "
                    f"{origin.path}:{origin.line} ({origin.qualname}): {line.strip()}"
                )
    return problems


def _parse_sources(solutions: Path, problems: list[str]) -> dict[Path, list[Region]]:
    """The regions of every reference ``.py`` (parsed once: they feed the stubs and the leak index).

    A malformed source is reported in ``problems`` and left out.
    """
    regions: dict[Path, list[Region]] = {}
    for path in sorted(solutions.rglob("*.py")):
        if _ignored(path.relative_to(solutions)):
            continue
        try:
            regions[path] = solution_regions(_read(path), _show(path, solutions))
        except StubError as error:
            problems.append(str(error))
        except UnicodeDecodeError:
            problems.append(f"{_show(path, solutions)}: not UTF-8 text")
    return regions


def _drift(
    solutions: Path, labs: Path, released: dict[Path, Path], regions: dict[Path, list[Region]]
) -> list[str]:
    """Released files that are missing from labs/ or differ from what generate() makes."""
    problems: list[str] = []
    for rel, source in released.items():
        target, origin = _show(labs / rel, labs), _show(source, solutions)
        if source.suffix == STUB_SUFFIX:
            if source not in regions:
                continue  # malformed: already reported, and there is no stub to compare with
            try:
                expected = _apply(_read(source), regions[source], origin)
            except StubError as error:
                problems.append(str(error))
                continue
            made = f"the stub generated from {origin}"
        else:
            expected, made = _read(source), f"the handout {origin}"
        try:
            actual = _read(labs / rel)
        except FileNotFoundError:
            problems.append(f"{target} is missing (generated from {origin}); {_REGENERATE}")
            continue
        except UnicodeDecodeError:
            actual = None
        if actual != expected:
            where = (
                "not UTF-8 text"
                if actual is None
                else f"first difference at line {_first_difference(actual, expected)}"
            )
            problems.append(f"{target} differs from {made} ({where}); {_REGENERATE}")
    return problems


def _extras(solutions: Path, labs: Path, extra: set[Path], instructor_only: list[Path]) -> list[str]:
    """Files in labs/ that the release does not contain, instructor-only ones named as such."""
    problems: list[str] = []
    secret = set(instructor_only)
    for rel in sorted(extra):
        shown = _show(labs / rel, labs)
        if rel in secret:
            origin = _show(solutions / rel, solutions)
            why = f"is instructor-only ({origin}; only .py and .md files are released)"
        elif rel.suffix not in (STUB_SUFFIX, HANDOUT_SUFFIX):
            why = "is not part of the release (only .py stubs and .md handouts from solutions/ are)"
        else:
            why = f"is not generated from solutions/ (there is no {_show(solutions / rel, solutions)})"
        problems.append(f"{shown} {why}; delete it or {_REGENERATE}")
    return problems


def _audit(solutions: Path, labs: Path) -> tuple[list[str], int, int]:
    """(problems, number of released files, number of solution regions in them)."""
    _check_layout(solutions, labs)
    released, instructor_only = _release_plan(solutions)
    present = _labs_files(labs)
    problems: list[str] = []
    regions = _parse_sources(solutions, problems)
    problems += _drift(solutions, labs, released, regions)
    problems += _extras(solutions, labs, present - released.keys(), instructor_only)
    problems += _leaks(labs, _solution_index(solutions, regions), present)
    n_regions = sum(len(regions.get(source, [])) for source in released.values())
    return problems, len(released), n_regions


def check(solutions: Path, labs: Path) -> list[str]:
    """Everything wrong with ``labs`` as a release of ``solutions``; [] when clean.

    Reports malformed reference sources, files in labs/ that differ from what generate() makes
    (with the first differing line), missing files, extra files (instructor-only ones named as
    such), and leaks: a line of solution-region code in any file of labs/.
    """
    problems, _, _ = _audit(solutions, labs)
    return problems


# --------------------------------------------------------------------------- CLI


def run(root: Path, *, check_only: bool) -> int:
    """``gradelab stubs [--check]``: regenerate labs/ from solutions/, or only check it.

    Exit codes: 0 clean (or written), 1 problems, 2 no solutions/ folder (a student release).
    After writing, the check runs again: a leak (say, solution code in a handout) survives
    regeneration and must be fixed in solutions/.
    """
    solutions, labs = root / "solutions", root / "labs"
    if not solutions.is_dir():
        print(
            f"no solutions/ folder in {root}: the stubs are generated from the reference solutions, "
            "which a student release does not include",
            file=sys.stderr,
        )
        return 2
    if not check_only:
        try:
            written, deleted = _sync(solutions, labs)
        except StubError as error:
            print(f"{error}\nnothing written", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path.relative_to(root).as_posix()}")
        for path in deleted:
            print(f"deleted {path.relative_to(root).as_posix()}")
        if not written and not deleted:
            print("labs/ was already up to date")
    problems, n_files, n_regions = _audit(solutions, labs)
    for problem in problems:
        print(problem)
    if problems:
        advice = f"{_REGENERATE} to regenerate labs/; " if check_only else ""
        print(
            f"{len(problems)} problem(s) with labs/: {advice}"
            "a problem that survives regeneration (a malformed source, solution code in a handout) "
            "must be fixed in solutions/"
        )
        return 1
    if check_only:
        print(
            f"labs/ is up to date with solutions/ ({n_files} files, {n_regions} solution regions, no leaks)"
        )
    return 0
