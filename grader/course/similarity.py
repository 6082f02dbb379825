"""How alike the students' code is, pair by pair: ``gradelab similarity LAB SUBMISSIONS... --out DIR``.

The figures come from **copydetect** (PyPI, MIT, ``pip install -e '.[similarity]'``), chosen because:

- it implements winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003), the fingerprinting behind
  MOSS: k-grams of the token stream are hashed and a window's minimum kept, which guarantees that
  every common run of at least ``GUARANTEE`` tokens is found and none shorter than ``NOISE``;
- it tokenises with Pygments first and replaces every name by ``V``/``F``/``O`` and every string
  by ``S``, dropping comments and whitespace: renaming variables, rewording docstrings and
  reformatting do not hide a copy;
- it takes *boilerplate* fingerprints and discards them, which is what a lab kit needs: every
  student starts from the same stubs;
- it runs here, on the instructor's machine (MOSS sends the code to a remote server, JPlag needs
  a JVM), and it is small, maintained and has a library API.

Only its fingerprinting and pairwise comparison are used (``CodeFingerprint``, ``compare_files``,
``highlight_overlap``); its own HTML report loads Bootstrap from a CDN, so the report here is
written by this module, self-contained.

What is compared: each submission's ``<lab>/**/*.py`` as one document (files in name order), minus
the packages a lab provides complete (``labs/lab2/lab1/``: everybody has the same copy). What is
boilerplate: every k-gram of the generated stubs in ``labs/<lab>/`` (not only the winnowed ones, so
a k-gram of the template never counts, wherever a student's edits shift the window), so two
independent correct solutions are not alike because they share the template.

A pair's *similarity* is the larger of the two shares "of this student's own code (tokens outside
the template), how much is also in the other's", as MOSS reports it per side: a student who copied
everything and added code of their own still shows the copied share on the copier's side. Exact
duplicates (the same content hash as the gradebook's) are flagged whatever the figure. The
threshold (``THRESHOLD``) is from measurements on a class in tests/engine/test_similarity.py; a
figure is evidence to look at, not a verdict.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import io
import keyword
import os
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from grader import paths

from .gradebook import atomic_write_text, content_hash, submission_ids

NOISE = 25  # copydetect's k (filtered characters, roughly tokens): shorter common runs are noise
GUARANTEE = 30  # every common run at least this long is found; the winnowing window is GUARANTEE - NOISE + 1
THRESHOLD = 0.5  # flagged at or above (measured: see the module docstring)
MAX_FILE_BYTES = 1 << 20  # a larger .py file is not student code worth comparing (and could be hostile)
REPORT_NAME = "similarity.html"


class SimilarityError(ValueError):
    """The comparison cannot run as asked (no such lab or folder, copydetect missing): exit 2."""


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    share_a: float  # of a's own code (outside the template), the part also found in b
    share_b: float
    identical: bool  # the same files, byte for byte (the gradebook's content hash)

    @property
    def similarity(self) -> float:
        return 1.0 if self.identical else max(self.share_a, self.share_b)


@dataclass
class Comparison:
    lab: str
    ids: list[str]
    pairs: list[Pair]  # most similar first
    boilerplate: int  # template k-grams discarded
    skipped: list[str]  # provided packages left out of every submission
    texts: dict[str, str] = field(default_factory=dict)  # the document compared, per id
    slices: dict[tuple[str, str], Any] = field(default_factory=dict)  # where each pair overlaps


def _stable_kgram_hashes(text: str, k: int) -> np.ndarray:
    """copydetect's ``hashed_kgrams`` with a fixed hash: it uses Python's ``hash()``, which is salted per
    process (PYTHONHASHSEED), so winnowing kept different k-grams on every run and the figures moved
    by a few hundredths between two runs on the same files. 64 bits of BLAKE2b are the same everywhere."""
    return np.array([int.from_bytes(hashlib.blake2b(text[i:i + k].encode("utf-8", "surrogatepass"), digest_size=8)
                                    .digest(), "little", signed=True) for i in range(len(text) - k + 1)],
                    dtype=np.int64)


def _copydetect() -> Any:
    os.environ.setdefault("MPLBACKEND", "Agg")  # copydetect imports matplotlib.pyplot: never a display
    try:
        import copydetect
        import copydetect.utils
    except ImportError as exc:
        raise SimilarityError("gradelab similarity needs copydetect: pip install -e '.[similarity]'") from exc
    copydetect.utils.hashed_kgrams = _stable_kgram_hashes  # get_document_fingerprints looks it up here
    return copydetect


def provided_packages(lab: str) -> list[str]:
    """The packages the lab's stubs provide complete (``labs/lab2/lab1``): the same for everyone."""
    top = paths.labs_dir() / lab
    return sorted(d.name for d in top.iterdir() if d.is_dir() and (d / "__init__.py").is_file())


def _python_files(top: Path, skip: Sequence[str]) -> list[Path]:
    """``*.py`` under ``top``, symlinks and oversized files left out, the ``skip`` packages too."""
    found = []
    for folder, dirs, files in os.walk(top, followlinks=False):
        rel = Path(folder).relative_to(top)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not (rel == Path(".") and d in skip))
        for name in files:
            f = Path(folder) / name
            if name.endswith(".py") and not f.is_symlink() and f.is_file() and f.stat().st_size <= MAX_FILE_BYTES:
                found.append(f)
    return sorted(found, key=lambda p: p.relative_to(top).as_posix())


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)


_DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
_STRINGS = {tokenize.STRING} | {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                                 if hasattr(tokenize, n)}


def line_keys(lines: Sequence[str]) -> tuple[list[str], list[int]]:
    """Per line, its tokens as the fingerprints see them (a name is ``V``, a string ``S``, comments and
    whitespace dropped), and the last line each line's tokens reach (a multi-line string's end).

    A line inside a multi-line string or a comment line has an empty key: it is nobody's own code.
    Renaming or reformatting a template line keeps its key, so it stays template. A file that does
    not tokenize falls back to its lines without whitespace."""
    keys = [""] * len(lines)
    reach = list(range(len(lines)))
    try:
        for tok in tokenize.generate_tokens(iter(lines).__next__):
            row = tok.start[0] - 1
            if tok.type in _DROPPED or row >= len(lines):
                continue
            word = "S" if tok.type in _STRINGS else (
                "V" if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) else tok.string)
            if not (word == "S" and keys[row].endswith("S")):
                keys[row] += word
            reach[row] = max(reach[row], min(tok.end[0] - 1, len(lines) - 1))
    except (tokenize.TokenError, SyntaxError):  # a broken file: whole lines, whitespace ignored
        return ["".join(line.split()) for line in lines], list(range(len(lines)))
    return keys, reach


def own_code(folder: Path, template: Path, skip: Sequence[str] = ()) -> str:
    """The student's own code in a lab package: the lines whose tokens differ from the template's file
    of the same name (every line of a file the template does not have), each run under a
    ``# ---- file:line`` comment. Only these are fingerprinted, so a k-gram never spans the template
    and a student's line: two students writing ``return np.tanh(x)`` after the same signature are not
    a copy, while renaming or reformatting the template's own lines does not make them the student's."""
    parts = []
    for f in _python_files(folder, skip):
        rel = f.relative_to(folder).as_posix()
        mine = _lines(f)
        keys, reach = line_keys(mine)
        base = line_keys(_lines(template / rel))[0] if (template / rel).is_file() else []
        rows = [i for i, k in enumerate(keys) if k]  # lines with tokens; the diff runs over them
        ops = difflib.SequenceMatcher(None, [k for k in base if k], [keys[i] for i in rows],
                                      autojunk=False).get_opcodes()
        own = sorted({row for tag, _, _, j1, j2 in ops if tag in ("replace", "insert")
                      for i in rows[j1:j2] for row in range(i, reach[i] + 1)})
        for run in _runs(own):
            parts.append(f"# ---- {rel}:{run[0] + 1} ----\n" + "".join(mine[i] for i in run).rstrip("\n") + "\n")
    return "".join(parts)


def _runs(rows: Sequence[int]) -> list[list[int]]:
    """Consecutive line numbers grouped: [1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]."""
    runs: list[list[int]] = []
    for r in rows:
        if runs and r == runs[-1][-1] + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    return runs


def boilerplate_hashes(lab: str) -> set[int]:
    """Every k-gram hash of the stubs in ``labs/<lab>/`` (window 1: all of them, not a winnowed sample)."""
    cd = _copydetect()
    hashes: set[int] = set()
    for f in _python_files(paths.labs_dir() / lab, provided_packages(lab)):
        code = f.read_text("utf-8", errors="replace")
        hashes |= set(cd.CodeFingerprint(f.name, NOISE, 1, fp=io.StringIO(code)).hashes)
    return hashes


def compare(lab: str, submissions: Sequence[Path], *, root: Path | None = None) -> Comparison:
    """Fingerprints each submission's ``<lab>`` package and compares every pair (see the module's docstring)."""
    cd = _copydetect()
    if not (paths.labs_dir() / lab).is_dir():
        known = sorted(p.name for p in paths.labs_dir().iterdir() if (p / "__init__.py").is_file())
        raise SimilarityError(f"unknown lab {lab!r}; the labs are: {', '.join(known) or 'none'}")
    subs = list(dict.fromkeys(Path(s) for s in submissions))
    for s in subs:
        if not s.is_dir():
            raise SimilarityError(f"{s}: no such submission folder")
    try:
        _, ids = submission_ids(subs, root)
    except ValueError as exc:
        raise SimilarityError(str(exc)) from exc
    skip = provided_packages(lab)
    template = sorted(boilerplate_hashes(lab))
    texts, prints, hashes = {}, {}, {}
    for path, sub_id in sorted(ids.items(), key=lambda kv: kv[1]):
        texts[sub_id] = own_code(path / lab, paths.labs_dir() / lab, skip)
        prints[sub_id] = cd.CodeFingerprint(f"{sub_id}.py", NOISE, GUARANTEE - NOISE + 1, boilerplate=template,
                                            fp=io.StringIO(texts[sub_id]))
        hashes[sub_id] = content_hash(path, lab)
    pairs, slices = [], {}
    for a, b in combinations(sorted(prints), 2):
        _, (share_a, share_b), where = cd.compare_files(prints[a], prints[b])
        identical = hashes[a] == hashes[b] and hashes[a] != "no-package"
        pairs.append(Pair(a, b, float(share_a), float(share_b), identical))
        slices[(a, b)] = where
    pairs.sort(key=lambda p: (-p.similarity, p.a, p.b))
    return Comparison(lab, sorted(prints), pairs, len(template), skip, texts, slices)


def _side(text: str, where: Any) -> str:
    cd = _copydetect()
    if len(where) == 0 or where.shape[-1] == 0:
        return html.escape(text)
    marked, _ = cd.utils.highlight_overlap(text, where, "<mark>", "</mark>", truncate=6, escape_html=True)
    return marked


def report_html(result: Comparison, threshold: float = THRESHOLD, show: int = 20) -> str:
    """A self-contained page: every pair ranked, then the flagged pairs' code side by side with the
    shared parts marked (at most ``show`` of them)."""
    e = html.escape
    flagged = [p for p in result.pairs if p.similarity >= threshold][:show]
    rows = "".join(f"<tr class='{'flagged' if p.similarity >= threshold else ''}'><td>{e(p.a)}</td><td>{e(p.b)}</td>"
                   f"<td class='num'>{p.similarity:.2f}</td><td class='num'>{p.share_a:.2f}</td>"
                   f"<td class='num'>{p.share_b:.2f}</td><td>{'identical files' if p.identical else ''}</td></tr>"
                   for p in result.pairs)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(result.lab)}: code similarity</title>"
             "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}td.num{text-align:right}tr.flagged{background:#fbe3e3}"
             ".pair{display:flex;gap:1em}.pair pre{flex:1;overflow:auto;max-height:40em;background:#f7f7f7;"
             "padding:.5em;font-size:12px}mark{background:#f3c26b}</style></head><body>",
             f"<h1>{e(result.lab)}: code similarity</h1><p>{len(result.ids)} submissions, {len(result.pairs)} pairs. "
             f"Template left out: {result.boilerplate} fingerprints of the stubs in labs/{e(result.lab)}/"
             + (f"; provided packages not compared: {e(', '.join(result.skipped))}" if result.skipped else "")
             + f". Flagged at similarity &ge; {threshold:.2f}: {sum(p.similarity >= threshold for p in result.pairs)}."
             " A figure is the share of a student's own code (outside the template) also found in the other's;"
             " it is evidence to read, not a verdict.</p>",
             "<table id='pairs'><tr><th>a</th><th>b</th><th>similarity</th><th>share of a</th><th>share of b</th>"
             f"<th></th></tr>{rows}</table>"]
    for p in flagged:
        where = result.slices.get((p.a, p.b), ([], []))
        parts.append(f"<h2>{e(p.a)} &harr; {e(p.b)}: {p.similarity:.2f}"
                     f"{' (identical files)' if p.identical else ''}</h2><div class='pair'>"
                     f"<pre>{_side(result.texts[p.a], where[0])}</pre><pre>{_side(result.texts[p.b], where[1])}</pre>"
                     "</div>")
    return "".join(parts) + "</body></html>\n"


def run(lab: str, submissions: Sequence[Path], out: Path, *, threshold: float = THRESHOLD,
        root: Path | None = None) -> tuple[Comparison, Path]:
    """Compares the submissions and writes ``<out>/similarity.html``; returns the comparison and the page."""
    result = compare(lab, submissions, root=root)
    page = Path(out) / REPORT_NAME
    atomic_write_text(page, report_html(result, threshold))
    return result, page
