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

The check scans EVERY file of the release, whatever its type or place, as a student could read
it: as UTF-8 and UTF-16/32 text, and what it holds unpacked, recursively and within bounds
(notebook cells and their outputs, any JSON's strings, compressed streams, zip and tar members,
.npy string arrays, pickle strings; see the "scanning" section for what is and is not read), for
code from any lab's solution regions: line by line with normalised
whitespace (the leak index of ``grader.authoring.stubs``), and multi-line statements with all whitespace
removed, so re-wrapping a block does not hide it. The only solution code allowed is a provided
lab (``solutions/<lab>/lab.toml``: ``provides = ["lab1"]``) inside ``labs/<lab>/<provided>/``,
and only when the provided lab is not itself a task of the release: releasing lab2 ships Lab 1's
reference (after Lab 1's deadline); releasing lab1 and lab2 together would hand Lab 1's solution
to Lab 1's students, so ``release`` refuses it.
"""

from __future__ import annotations

import ast
import bz2
import codecs
import gzip
import html
import io
import json
import lzma
import pickletools
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    return "".join("".join((stubs._strip_comment(line) if "#" in line else line).split())
                   for line in text.splitlines())


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
#
# A release is scanned as a student could read it, not as a list of file names. Each file's
# bytes are read as UTF-8 text and as UTF-16/UTF-32 text, and whatever a file holds is unpacked
# and scanned in turn: compressed streams (gzip, bzip2, xz, lzma), archives (zip and what is built
# on it, .npz and .pt included; tar, .tgz, .tar.xz, .tar.bz2), the strings of any JSON (a
# notebook's cells, their outputs and metadata: a traceback prints source lines), the string
# arrays of .npy files, the strings of pickles (read with pickletools, never unpickled). Terminal
# colours and traceback gutters (``----> 3``, ``>>>``) are taken off a line before it is looked
# up; HTML outputs are read with their tags removed. Unpacking is bounded, MAX_DEPTH levels,
# MAX_UNPACKED bytes and MAX_MEMBERS members per file of the release, so a bomb costs a bounded
# time and memory, and is reported: a release holds nothing the check could not read. So is
# anything it cannot open (an encrypted member, 7z, rar, zstd, a corrupt stream). Not scanned:
# what needs decoding first (base64, hex, any cipher, text drawn in an image, zlib streams without
# a gzip header such as PDF's or PNG's, compiled .pyc) and .git beyond its one clean commit.

MAX_DEPTH = 6  # streams and archives inside one another
MAX_UNPACKED = 256 << 20  # bytes unpacked from one file of the release, all levels together
MAX_MEMBERS = 20_000  # archive members in one file of the release, all levels together
MIN_WIDE_RUN = 8  # characters: shorter UTF-16/32 runs in binary data are noise
MAX_PARSED = 32 << 20  # bytes of JSON or pickle read into objects (a file takes ~10 times that in memory)
_WINDOW = 16 << 20  # bytes searched for UTF-16/32 runs at a time (numpy's masks cost ~6 bytes a byte)
_OVERLAP = 64 << 10  # windows overlap, so a line cut by a window's end is whole in the next
_CHUNK = 1 << 20
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# Characters that end a line for the line index: newlines, and what text never holds (control
# characters, U+FFFD for bytes that are not UTF-8), so strings packed between binary bytes (a
# NUL-padded string array) come out one per line.
_BREAKS = "\n\r\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029\ufffd"
_LONG_LINE = re.compile(f"[^{_BREAKS}]{{{stubs.MIN_LEAK_CHARS},}}")  # shorter lines are not in the index
# The same, minus whitespace (which squashing removes): what separates pieces for the block index.
_TEXT_RUN = re.compile(f"[^\x00-\x08\x0e-\x1b\x7f\ufffd]{{{MIN_BLOCK_CHARS},}}")
# A traceback's or a console's gutter before a source line: "----> 3 ", "      2 ", "> ", ">>> ", "... ", "12: ".
_GUTTER = re.compile(r"^[ \t]*(?:(?:[-=]*>{1,3}|\.\.\.)[ \t]*(?:\d+[ \t]*[|:]?)?|\d+[ \t]*[|:]?)[ \t]", re.M)
_TAG = re.compile(r"<[^<>]*>")
_HTML_NAMES = (".html", ".htm", ".xhtml", ".svg", ".xml")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
Blob = bytes | bytearray


def _open_gzip(f: io.BytesIO) -> io.BufferedIOBase:
    return gzip.GzipFile(fileobj=f)


def _open_lzma_alone(f: io.BytesIO) -> io.BufferedIOBase:
    return lzma.LZMAFile(f, format=lzma.FORMAT_ALONE)


# Compressed streams: magic bytes, name, opener (multi-stream files read to the end).
_STREAMS: tuple[tuple[bytes, str, Callable[[io.BytesIO], io.BufferedIOBase]], ...] = (
    (b"\x1f\x8b", "gzip", _open_gzip), (b"BZh", "bzip2", bz2.BZ2File), (b"\xfd7zXZ\x00", "xz", lzma.LZMAFile))
# Formats the check cannot open: they must not ship (their contents would go unscanned).
_UNREADABLE = ((b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"), (b"\x28\xb5\x2f\xfd", "zstd"),
               (b"\x04\x22\x4d\x18", "lz4"), (b"\x1f\x9d", "compress (.Z)"))
_COMPRESSED_SUFFIXES = {".gz": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".tbz": ".tar", ".xz": "",
                        ".txz": ".tar", ".lzma": ""}


@dataclass(frozen=True)
class Text:
    """Something a student can read in the release: where it is, and the text."""

    where: str  # "data/x.tgz!inner/a.py", "notebooks/lab1.ipynb[cell 3/output 0/traceback]"
    text: str
    rows: bool = True  # False when the text is pieced together (row numbers would mean nothing)
    html: bool = False  # read also with tags removed and entities decoded


class _Bomb(Exception):
    """Unpacking one file of the release went past MAX_UNPACKED or MAX_MEMBERS."""


@dataclass
class _Unpacking:
    """What unpacking one file of the release may still cost, and what could not be unpacked."""

    where: str
    left: int = MAX_UNPACKED
    members: int = MAX_MEMBERS
    problems: list[str] = field(default_factory=list)

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _Bomb(f"{self.where}: unpacks to more than {MAX_UNPACKED >> 20} MiB (a decompression bomb?): "
                        f"not fully scanned, so it must not ship")

    def member(self) -> None:
        self.members -= 1
        if self.members < 0:
            raise _Bomb(f"{self.where}: holds more than {MAX_MEMBERS} archive members: not fully scanned, "
                        f"so it must not ship")

    def unreadable(self, where: str, why: str) -> None:
        self.problems.append(f"{where}: {why}: the check cannot read it, so it must not ship")


def _bom(data: Blob) -> str | None:
    """The encoding a byte-order mark at the start of ``data`` names, if any."""
    return next((codec for bom, codec in _BOMS if data.startswith(bom)), None)


def _wide_runs(where: str, data: Blob, skip: int = 0) -> Iterator[Text]:
    """ASCII text stored two or four bytes a character anywhere in ``data`` (a UTF-16 file without
    a byte-order mark, a NumPy unicode array): every run of at least MIN_WIDE_RUN characters, at
    every alignment, one run a line (runs of ``skip`` bytes a character left out: a file with a
    byte-order mark is read whole in its encoding). Vectorised: binary data is mostly zeros."""
    if b"\x00" not in data:
        return
    whole = np.frombuffer(data, dtype=np.uint8)
    runs: dict[int, list[str]] = {4: [], 2: []}
    for start in range(0, max(len(whole) - _OVERLAP, 1), _WINDOW):
        _wide_window(whole[start:start + _WINDOW + _OVERLAP], runs)
    for width, found in runs.items():
        if found and width != skip:  # little- and big-endian runs share a label: a shifted copy of one is the other
            yield Text(f"{where} (UTF-{8 * width} text)", "\n".join(found), rows=False)


def _wide_window(raw: np.ndarray, runs: dict[int, list[str]]) -> None:
    """Adds the runs in ``raw`` to ``runs`` (keyed by bytes a character). A character unit is one
    printable ASCII byte and zeros, in either order; a run is consecutive units at one alignment.
    Each mask says, for every byte position, whether a unit starts there."""
    n = len(raw)
    if n < 2 * MIN_WIDE_RUN:
        return
    printable = ((raw >= 0x20) & (raw <= 0x7E)) | (raw == 9) | (raw == 10) | (raw == 13)
    zero = raw == 0
    masks = (  # (bytes a character, where the character is in its unit, mask)
        (2, 0, printable[:-1] & zero[1:]),
        (2, 1, zero[:-1] & printable[1:]),
        (4, 0, printable[:n - 3] & zero[1:n - 2] & zero[2:n - 1] & zero[3:]),
        (4, 3, zero[:n - 3] & zero[1:n - 2] & zero[2:n - 1] & printable[3:]),
    )
    for width, char, ok in masks:
        if np.count_nonzero(ok) < MIN_WIDE_RUN:
            continue
        for offset in range(width):
            lane = ok[offset::width]
            if np.count_nonzero(lane) < MIN_WIDE_RUN:
                continue
            edges = np.flatnonzero(np.diff(np.concatenate(([0], lane.astype(np.int8), [0]))))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                if b - a >= MIN_WIDE_RUN:
                    first = offset + a * width + char
                    runs[width].append(raw[first:first + (b - a) * width:width].tobytes().decode("ascii"))


def _stream(where: str, name: str, data: Blob, unpacking: _Unpacking) -> tuple[str, Blob] | None:
    """(name, contents) of a compressed stream, or None when ``data`` is not one."""
    openers = [(kind, opener) for magic, kind, opener in _STREAMS if data.startswith(magic)]
    if not openers and name.endswith(".lzma"):  # lzma's old format has no magic bytes
        openers = [("lzma", _open_lzma_alone)]
    if not openers:
        return None
    kind, opener = openers[0]
    out = bytearray()
    try:
        with opener(io.BytesIO(data)) as f:
            while chunk := f.read(_CHUNK):
                unpacking.take(len(chunk))
                out += chunk
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        unpacking.unreadable(where, f"a {kind} stream that does not unpack ({exc})")
        return None
    stem, suffix = (name.rsplit(".", 1)[0], "." + name.rsplit(".", 1)[1]) if "." in name else (name, "")
    return stem + _COMPRESSED_SUFFIXES.get(suffix, ""), out


def _read_member(read: Callable[[int], bytes], unpacking: _Unpacking) -> bytearray:
    out = bytearray()
    while chunk := read(_CHUNK):
        unpacking.take(len(chunk))
        out += chunk
    return out


def _zip_members(where: str, data: Blob, unpacking: _Unpacking) -> Iterator[tuple[str, Blob]]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if data.startswith(b"PK\x03\x04"):
            unpacking.unreadable(where, f"a zip archive that does not open ({exc})")
        return  # else a stray end-of-archive signature in other data
    with z:
        for info in z.infolist():
            if info.is_dir():
                continue
            unpacking.member()
            try:
                with z.open(info) as f:
                    member = _read_member(f.read, unpacking)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError,
                    zlib.error, lzma.LZMAError) as exc:  # encrypted, unknown method, corrupt
                unpacking.unreadable(f"{where}!{info.filename}", f"a zip member that does not unpack ({exc})")
                continue
            yield info.filename, member


def _tar_members(where: str, data: Blob, unpacking: _Unpacking) -> Iterator[tuple[str, Blob]]:
    if len(data) < 512:
        return
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return  # not a tar archive
    with tar:
        try:
            for info in tar:  # in memory: a member cannot claim more than ``data`` holds
                unpacking.member()
                f = tar.extractfile(info) if info.isreg() else None
                if f is not None:
                    yield info.name, _read_member(f.read, unpacking)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            unpacking.unreadable(where, f"a tar archive that does not unpack to the end ({exc})")


def _npy_strings(where: str, data: Blob, unpacking: _Unpacking) -> Iterator[Text]:
    """The strings of a .npy array: unicode and byte-string elements (and fields), and the
    strings of an object array's pickle. (A string array larger than MAX_PARSED is left to the
    byte-level readers: its bytes are UTF-8 or UTF-32 text between NUL paddings.)"""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if dtype.hasobject:
            yield from _pickle_strings(where, f.read(), unpacking)
            return
        if len(data) > MAX_PARSED:
            return
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, MemoryError):
        return
    fields = [array[name] for name in dtype.names] if dtype.names else [array]
    for values in fields:
        if values.dtype.kind not in "US":
            continue
        items = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
                 for v in values.ravel().tolist()]
        # one element a line, and all of them run together (an array of single characters)
        yield Text(f"{where} (string array)", "\n".join(items), rows=False)
        yield Text(f"{where} (string array, joined)", "".join(items), rows=False)


def _pickle_strings(where: str, data: Blob, unpacking: _Unpacking) -> Iterator[Text]:
    """Every string a pickle holds, read op by op (pickletools): nothing is unpickled."""
    if len(data) > MAX_PARSED:
        unpacking.unreadable(where, f"a pickle larger than {MAX_PARSED >> 20} MiB (its strings are not read)")
        return
    strings: list[str] = []
    try:
        for _, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str):
                strings.append(arg)
            elif isinstance(arg, (bytes, bytearray)):
                strings.append(bytes(arg).decode("utf-8", errors="replace"))
    except (ValueError, EOFError, KeyError, UnicodeDecodeError, OverflowError):
        pass  # what was read before the error is still scanned
    if strings:
        yield Text(f"{where} (pickled strings)", "\n".join(strings), rows=False)


def _json_label(path: tuple[str | int, ...]) -> str:
    text = "/".join(map(str, path))
    text = re.sub(r"^cells/(\d+)", r"cell \1", text)
    return re.sub(r"outputs/(\d+)", r"output \1", text).removesuffix("/source")


def _json_strings(where: str, value: object, path: tuple[str | int, ...] = ()) -> Iterator[Text]:
    """Every string in a JSON document, a list of strings (a notebook's lines) joined both as
    written and a line each; HTML (a ``text/html`` output) flagged to be read without its tags."""
    html_like = any(isinstance(p, str) and ("html" in p or "svg" in p or "xml" in p) for p in path)
    if isinstance(value, str):
        yield Text(f"{where}[{_json_label(path)}]", value, html=html_like)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        label = f"{where}[{_json_label(path)}]"
        yield Text(label, "".join(value), html=html_like)
        if any(not v.endswith("\n") for v in value[:-1]):  # e.g. a traceback: one frame an entry
            yield Text(label, "\n".join(value), html=html_like)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(where, v, (*path, i))
    elif isinstance(value, dict):
        keys = [k for k in value if len(k) >= stubs.MIN_LEAK_CHARS]
        if keys:
            yield Text(f"{where}[{_json_label(path)} keys]", "\n".join(keys), rows=False)
        for k, v in value.items():
            yield from _json_strings(where, v, (*path, k))


def _texts(where: str, name: str, data: Blob, unpacking: _Unpacking, depth: int = 0) -> Iterator[Text]:
    """Everything a student can read in one file (``where`` names it): its text in every encoding
    looked for, and, recursively, what it contains (see the section's comment)."""
    html_name = name.lower().endswith(_HTML_NAMES)
    text = bytes(data).decode("utf-8", errors="replace")
    yield Text(where, text, html=html_name)  # always: a byte-order mark may be a decoy before UTF-8
    codec = _bom(data)
    if codec is not None:
        text = bytes(data).decode(codec, errors="replace")
        yield Text(f"{where} ({codec.upper()} text)", text, html=html_name)
    yield from _wide_runs(where, data, skip={"utf-16": 2, "utf-32": 4}.get(codec or "", 0))
    for magic, kind in _UNREADABLE:
        if data.startswith(magic):
            unpacking.unreadable(where, f"a {kind} file")
    if text.lstrip()[:1] in ("{", "[") and len(data) > MAX_PARSED:
        unpacking.unreadable(where, f"JSON-like text larger than {MAX_PARSED >> 20} MiB (its strings are not read)")
    elif text.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if document is not None:
            try:
                yield from _json_strings(where, document)
            except RecursionError:
                unpacking.unreadable(where, "JSON nested too deep to read")
    if data.startswith(b"\x93NUMPY"):
        yield from _npy_strings(where, data, unpacking)
    elif data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        yield from _pickle_strings(where, data, unpacking)
    contained: list[tuple[str, str, Blob]] = []  # (where, name, bytes) of what ``data`` holds
    stream = _stream(where, name, data, unpacking)
    if stream is not None:
        contained.append((where, stream[0], stream[1]))
    else:
        for members in (_zip_members, _tar_members):
            contained += [(f"{where}!{member}", member, blob) for member, blob in members(where, data, unpacking)]
    for inner_where, inner_name, blob in contained:
        base = inner_name.rsplit("/", 1)[-1]
        if inner_where != where and (base == "hidden.toml" or inner_name.startswith(FORBIDDEN)):
            unpacking.problems.append(f"{inner_where} must not be in a release (instructor-only)")
        if depth + 1 > MAX_DEPTH:
            unpacking.unreadable(inner_where, f"nested more than {MAX_DEPTH} archives deep")
            continue
        yield from _texts(inner_where, inner_name, blob, unpacking, depth + 1)


def _key(line: str) -> str:
    """stubs._normalize, fast on the many lines without a ``#``."""
    return stubs._normalize(line) if "#" in line else " ".join(line.split())


def _pieces(text: str) -> str:
    """``text`` squashed, the pieces between non-text characters long enough to hold a block kept,
    joined by NUL (which no block contains): binary data shrinks to its few printable runs."""
    pieces = (_squash(p) for p in _TEXT_RUN.findall(text))
    return "\x00".join(p for p in pieces if len(p) >= MIN_BLOCK_CHARS)


def _leaks(item: Text, rel: Path, index: Index, released: set[str]) -> list[str]:
    """The solution lines and blocks in one text, read also without terminal colours, without a
    traceback's gutter and (HTML) without tags."""
    problems: list[str] = []
    plain = _ANSI.sub("", item.text) if "\x1b" in item.text else item.text
    variants = [plain]
    if item.html:
        variants.append(html.unescape(_TAG.sub("", plain)))
    variants += [stripped for v in list(variants) if (stripped := _GUTTER.sub("", v)) != v]
    reported: set[stubs._Origin] = set()  # a line a later reading finds again is not reported twice
    for variant in variants:
        before = set(reported)
        for line in _LONG_LINE.finditer(variant):
            origin = index.lines.get(_key(line.group()))
            if (origin is not None and origin not in before
                    and not _allowed(rel, origin.path.split("/")[1], released, index)):
                reported.add(origin)
                at = item.where
                if item.rows and variant is plain:
                    at += f":{variant.count(chr(10), 0, line.start()) + 1}"  # the row an editor shows
                problems.append(f"leak: {at} contains solution code from {origin.path}:{origin.line} "
                                f"({origin.qualname}): {line.group().strip()}")
        squashed = _pieces(variant)
        for secret in index.blocks:
            if secret.text in squashed and not _allowed(rel, secret.lab, released, index):
                problems.append(f"leak: {item.where} contains a multi-line solution block from {secret.origin}")
    return problems


def _allowed(rel: Path, lab: str, released: set[str], index: Index) -> bool:
    """Solution code of ``lab`` is allowed only in labs/<task>/<lab>/ of a lab that provides it,
    and only when ``lab`` itself is not a task of this release."""
    parts = rel.parts
    return (len(parts) > 3 and parts[0] == "labs" and parts[2] == lab and lab not in released
            and lab in index.provides.get(parts[1], set()))


def scan(root: Path, index: Index, released: set[str]) -> list[str]:
    """Leaks of solution code in any file under ``root`` (``.git`` and caches aside), and what
    could not be read to the end."""
    problems: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if _IGNORED_DIRS & set(rel.parts[:-1]):
            continue
        unpacking = _Unpacking(rel.as_posix())
        try:
            for item in _texts(rel.as_posix(), path.name, path.read_bytes(), unpacking):
                problems += _leaks(item, rel, index, released)
        except _Bomb as exc:
            problems.append(str(exc))
        problems += unpacking.problems
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
