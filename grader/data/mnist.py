"""MNIST for the labs: an IDX reader, checksum verification and a fixed stratified split.

The kit bundles a 10,000-digit subset of MNIST in ``data/mnist/`` (see its README). Every
student and the grader must see exactly the same training and test digits, so the split is
deterministic (seeded, stratified per class) and the bundled bytes are checked against
``SHA256SUMS`` before use. A directory holding the full MNIST distribution is read with its
official train/t10k split instead.

Public API:
    MnistError         every failure, with a message naming the file and what to do
    read_idx           one IDX file (raw or gzip) -> native-endian ndarray
    verify_checksums   check the files listed in ``<dir>/SHA256SUMS``
    MnistSplit         train/test images and labels plus a description of where they came from
    stratified_split   deterministic per-class split of sample indices
    load_mnist         the bundled subset (cached) or a user directory -> MnistSplit
    clear_cache        forget cached bundled loads (tests, or after replacing the data)
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.paths import data_dir

__all__ = [
    "MnistError",
    "MnistSplit",
    "clear_cache",
    "load_mnist",
    "read_idx",
    "stratified_split",
    "verify_checksums",
]

# IDX type byte -> big-endian numpy dtype. The format stores every multi-byte value big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_IMAGE_SHAPE = (28, 28)
_NUM_CLASSES = 10

_SUMS_NAME = "SHA256SUMS"
# Set by `gradelab grade/test --data DIR`: load_mnist() without a directory then reads DIR.
COURSE_DATA_ENV = "GRADELAB_MNIST_DIR"
_PAIR = ("images-idx3-ubyte", "labels-idx1-ubyte")
_FULL = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MnistError(ValueError):
    """MNIST data is missing, corrupt or malformed; the message names the file and the fix."""


@dataclass(frozen=True, eq=False)  # eq=False: element-wise array == has no single truth value
class MnistSplit:
    """A train/test split of MNIST. All arrays are read-only.

    Attributes:
        train_images: (N_train, 28, 28) uint8, grey levels 0..255.
        train_labels: (N_train,) int64, digits 0..9.
        test_images: (N_test, 28, 28) uint8.
        test_labels: (N_test,) int64.
        source: where the data came from and how it was split, for logs and reports.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


# --------------------------------------------------------------------------------------------
# IDX files


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file into an array of the shape its header declares.

    The file is gunzipped if its name ends in ``.gz`` or its content starts with the gzip
    magic bytes, and read raw otherwise. Header, dtype code and payload length are all
    validated; the payload must be exactly ``prod(dims) * itemsize`` bytes.

    Returns:
        A writable, native-endian array: uint8, int8, int16, int32, float32 or float64.

    Raises:
        MnistError: the file is missing, unreadable, not valid gzip, or not valid IDX.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if path.name.endswith(".gz") or raw.startswith(_GZIP_MAGIC):
        raw = _gunzip(path, raw)
    return _parse_idx(path, raw)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MnistError(f"{path}: file does not exist; check the path or restore the file") from None
    except IsADirectoryError:
        raise MnistError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as e:
        raise MnistError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from e


def _gunzip(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        # BadGzipFile (an OSError) covers a wrong header or CRC, EOFError a cut-off stream.
        raise MnistError(
            f"{path}: not a valid gzip file ({e}); the file is corrupt or truncated, "
            "restore or re-download it"
        ) from e


def _parse_idx(path: Path, data: bytes) -> np.ndarray:
    if len(data) < 4:
        raise MnistError(f"{path}: only {len(data)} bytes, too short for an IDX header; file is truncated")
    zero0, zero1, code, ndim = data[:4]
    if zero0 or zero1:
        raise MnistError(
            f"{path}: bad IDX magic {data[:4].hex()} (must start with two zero bytes); "
            "this is not an IDX file or it is corrupt"
        )
    dtype = _IDX_DTYPES.get(code)
    if dtype is None:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise MnistError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: {known}); the file is corrupt")
    if ndim == 0:
        raise MnistError(f"{path}: IDX header declares 0 dimensions; the file is corrupt")

    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise MnistError(
            f"{path}: header declares {ndim} dimensions but the file ends after {len(data)} bytes; "
            "the file is truncated"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "has extra trailing bytes"
        raise MnistError(
            f"{path}: payload is {actual} bytes but header dims {dims} x {dtype.itemsize} bytes "
            f"need exactly {expected}; the file {problem}, restore or re-download it"
        )
    # astype copies, which also turns the read-only frombuffer view into a writable array.
    flat = np.frombuffer(data, dtype=dtype, offset=header_len)
    return flat.astype(dtype.newbyteorder("=")).reshape(dims)


# --------------------------------------------------------------------------------------------
# Checksums


def verify_checksums(directory: Path) -> None:
    """Check every file listed in ``directory/SHA256SUMS`` (``sha256sum`` format).

    Does nothing if the directory has no ``SHA256SUMS``: user-provided data need not have one.

    Raises:
        MnistError: ``SHA256SUMS`` is malformed, a listed file is missing, or a hash differs.
    """
    directory = Path(directory)
    sums_path = directory / _SUMS_NAME
    if not sums_path.is_file():
        return
    fix = _restore_hint(directory)
    for name, expected in _read_sums(sums_path).items():
        path = directory / name
        if not path.is_file():
            raise MnistError(f"{path}: listed in {sums_path} but missing; {fix}")
        actual = _sha256(path)
        if actual != expected:
            raise MnistError(
                f"{path}: sha256 mismatch: expected {expected} (from {sums_path}), actual {actual}; "
                f"the file is corrupt or was modified; {fix}"
            )


_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _read_sums(sums_path: Path) -> dict[str, str]:
    """``SHA256SUMS`` -> {file name: lowercase hex digest}."""
    try:
        text = sums_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MnistError(f"{sums_path}: cannot be read ({e})") from e
    sums: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SUMS_LINE.match(line)
        name = m.group(2) if m else ""
        # Names are relative to the directory; refusing paths keeps a bad file from pointing outside it.
        if not m or "/" in name or "\\" in name or name in (".", ".."):
            raise MnistError(
                f"{sums_path}:{lineno}: malformed line {line!r}; expected '<64 hex digits>  <file name>'"
            )
        sums[name] = m.group(1).lower()
    if not sums:
        raise MnistError(f"{sums_path}: lists no files; regenerate it with `sha256sum FILES > SHA256SUMS`")
    return sums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise MnistError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from e
    return h.hexdigest()


def _restore_hint(directory: Path) -> str:
    if _same_dir(directory, _bundled_dir()):
        return "restore it from git (git checkout -- data/mnist)"
    return "restore or re-download it (or regenerate SHA256SUMS if the change was intended)"


# --------------------------------------------------------------------------------------------
# Splitting


def stratified_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test, keeping each class's share in both parts.

    For each class (in ascending label order) the class's indices are permuted by one
    ``np.random.Generator(PCG64(seed))`` and the first ``round(test_fraction * count)`` go to
    test. Same inputs give the same split on every run and platform.

    Args:
        labels: (N,) integer class labels.
        test_fraction: share of each class that goes to test, in [0, 1].
        seed: seed of the permutation.

    Returns:
        (train_idx, test_idx): int64 index arrays, each sorted ascending, disjoint, together
        covering ``range(N)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} with shape {labels.shape}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    rng = np.random.Generator(np.random.PCG64(seed))
    test_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n_test = round(test_fraction * members.size)
        test_parts.append(rng.permutation(members)[:n_test])
    is_test = np.zeros(labels.size, dtype=bool)
    if test_parts:
        is_test[np.concatenate(test_parts)] = True
    # flatnonzero yields sorted indices, so sortedness needs no extra pass.
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Loading


def load_mnist(directory: Path | None = None, *, test_fraction: float = 0.2, seed: int = 0) -> MnistSplit:
    """Load MNIST as a train/test split.

    ``directory`` may be:
        * ``None``: the bundled 10k subset in ``data/mnist/``. Its checksums are verified, it is
          split with ``stratified_split(labels, test_fraction, seed)``, and the result is
          cached per (directory, test_fraction, seed) for the life of the process.
        * a directory with the full MNIST files ``train-images-idx3-ubyte``,
          ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
          (each optionally ``.gz``): the official train/t10k split, unchanged;
          ``test_fraction`` and ``seed`` are ignored.
        * a directory with one ``images-idx3-ubyte[.gz]`` + ``labels-idx1-ubyte[.gz]`` pair:
          split stratified like the bundled subset.
    A ``SHA256SUMS`` in a user directory is verified too. Where both ``x`` and ``x.gz`` exist
    the uncompressed one is read.

    Returns:
        An MnistSplit of read-only arrays: images (N, 28, 28) uint8, labels (N,) int64.

    Raises:
        MnistError: missing or corrupt files, or data that is not MNIST-shaped.
    """
    bundled = _bundled_dir()
    if directory is None and os.environ.get(COURSE_DATA_ENV):
        # `gradelab grade/test --data DIR`: the course's own held-out set, for every accuracy case
        directory = Path(os.environ[COURSE_DATA_ENV])
    if directory is None or _same_dir(Path(directory), bundled):
        return _load_bundled_cached(bundled.resolve(), float(test_fraction), int(seed))
    return _load_user_dir(Path(directory), test_fraction, seed)


def clear_cache() -> None:
    """Forget cached bundled loads, so the next ``load_mnist()`` reads and verifies the files again."""
    _load_bundled_cached.cache_clear()
    _read_bundled_cached.cache_clear()


def _bundled_dir() -> Path:
    return data_dir() / "mnist"


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# Two caches: the read (decompress + validate, the slow part) is shared by every seed, and each
# split is kept so repeated calls return the very same read-only arrays.
@functools.lru_cache(maxsize=1)
def _read_bundled_cached(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    sums_path = directory / _SUMS_NAME
    if not sums_path.is_file():
        # The bundled data must never be used unverified; a missing list means a broken checkout.
        raise MnistError(f"{sums_path}: missing; restore it from git (git checkout -- data/mnist)")
    missing = [f"{n}.gz" for n in _PAIR if f"{n}.gz" not in _read_sums(sums_path)]
    if missing:
        raise MnistError(f"{sums_path}: does not list {', '.join(missing)}; restore it from git")
    verify_checksums(directory)
    images_path, labels_path = (directory / f"{n}.gz" for n in _PAIR)
    return _read_pair(images_path, labels_path)


@functools.lru_cache(maxsize=8)
def _load_bundled_cached(directory: Path, test_fraction: float, seed: int) -> MnistSplit:
    images, labels = _read_bundled_cached(directory)
    return _split(images, labels, test_fraction, seed, f"bundled {_count_str(len(labels))} subset")


def _load_user_dir(directory: Path, test_fraction: float, seed: int) -> MnistSplit:
    if not directory.is_dir():
        raise MnistError(f"{directory}: not a directory; pass a directory holding MNIST IDX files")
    full = {name: _find(directory, name) for name in _FULL}
    pair = {name: _find(directory, name) for name in _PAIR}
    has_full = all(full.values())
    has_pair = all(pair.values())
    if has_full and has_pair:
        raise MnistError(
            f"{directory}: holds both the full MNIST files ({', '.join(_FULL)}) and a single "
            f"{' + '.join(_PAIR)} pair; it is ambiguous which to load, move one set elsewhere"
        )
    if not (has_full or has_pair):
        found = [p.name for p in (*full.values(), *pair.values()) if p]
        hint = f" (found only {', '.join(found)})" if found else ""
        raise MnistError(
            f"{directory}: no complete MNIST data found{hint}; looked for the full set "
            f"{', '.join(f'{n}[.gz]' for n in _FULL)} or the pair "
            f"{' + '.join(f'{n}[.gz]' for n in _PAIR)}"
        )
    verify_checksums(directory)
    if has_pair:
        images, labels = _read_pair(*(pair[n] for n in _PAIR))
        return _split(images, labels, test_fraction, seed, f"{directory} ({len(labels)} samples)")

    train_images, train_labels = _read_pair(full[_FULL[0]], full[_FULL[1]])
    test_images, test_labels = _read_pair(full[_FULL[2]], full[_FULL[3]])
    return MnistSplit(
        train_images=_frozen(train_images),
        train_labels=_frozen(train_labels),
        test_images=_frozen(test_images),
        test_labels=_frozen(test_labels),
        source=(
            f"full MNIST from {directory}, official train/t10k split ({len(train_labels)}/{len(test_labels)})"
        ),
    )


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate an images/labels pair -> ((N, 28, 28) uint8, (N,) int64)."""
    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise MnistError(
            f"{images_path}: holds {images.dtype} data of shape {images.shape}, expected uint8 "
            f"(N, {_IMAGE_SHAPE[0]}, {_IMAGE_SHAPE[1]}) MNIST images; is this an images file?"
        )
    labels = read_idx(labels_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise MnistError(
            f"{labels_path}: holds {labels.dtype} data of shape {labels.shape}, expected 1-D integer "
            "labels; is this a labels file?"
        )
    if len(images) != len(labels):
        raise MnistError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "the two files do not belong together, use the matching pair"
        )
    if len(labels) == 0:
        raise MnistError(f"{labels_path}: holds no samples; use a non-empty data set")
    bad = np.flatnonzero((labels < 0) | (labels >= _NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        raise MnistError(
            f"{labels_path}: label {int(labels[i])} at index {i} is outside 0..{_NUM_CLASSES - 1} "
            f"({bad.size} such labels); the file is corrupt or not MNIST labels"
        )
    return images, labels.astype(np.int64)


def _split(images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int, what: str) -> MnistSplit:
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    test_pct = f"{100 * test_fraction:.4g}"
    train_pct = f"{100 - 100 * test_fraction:.4g}"
    return MnistSplit(
        train_images=_frozen(images[train_idx]),
        train_labels=_frozen(labels[train_idx]),
        test_images=_frozen(images[test_idx]),
        test_labels=_frozen(labels[test_idx]),
        source=f"{what}, stratified {train_pct}/{test_pct} split (seed {seed})",
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    # A read-only view of a read-only owner: unlike a plain owner, the view cannot simply be
    # flipped back to writable, so a caller cannot corrupt the cached arrays by accident.
    a.flags.writeable = False
    view = a.view()
    view.flags.writeable = False
    return view


def _count_str(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)
