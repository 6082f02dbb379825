"""grader.data.mnist: the bundled subset, the IDX reader, checksums, the split and the error messages."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from grader.data import mnist
from grader.data.mnist import MnistError, MnistSplit, load_mnist, read_idx, stratified_split, verify_checksums
from grader.paths import data_dir

BUNDLED = data_dir() / "mnist"
BUNDLED_COUNTS = {0: 1001, 1: 1127, 2: 991, 3: 1032, 4: 980, 5: 863, 6: 1014, 7: 1070, 8: 944, 9: 978}

# numpy dtype -> IDX type byte, written independently of grader.data.mnist's own table.
IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}


def encode_idx(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as IDX: 0, 0, type byte, ndim, big-endian uint32 dims, big-endian data."""
    arr = np.asarray(arr)
    header = bytes([0, 0, IDX_CODES[arr.dtype.name], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    """Write ``arr`` as IDX to ``path``, gzip-compressed if the name ends in .gz."""
    data = encode_idx(arr)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic MNIST-shaped samples: (n, 28, 28) uint8 images, (n,) uint8 labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def write_pair(directory: Path, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> Path:
    suffix = ".gz" if gz else ""
    write_idx(directory / f"images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"labels-idx1-ubyte{suffix}", labels)
    return directory


def write_sums(directory: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(directory.iterdir())
        if p.name != "SHA256SUMS"
    ]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def row_counter(*image_sets: np.ndarray) -> Counter[bytes]:
    return Counter(img.tobytes() for images in image_sets for img in images)


@pytest.fixture(scope="module")
def bundled() -> MnistSplit:
    mnist.clear_cache()
    return load_mnist()


@pytest.fixture(scope="module")
def bundled_raw() -> tuple[np.ndarray, np.ndarray]:
    """The whole bundled set, read directly (no split)."""
    return read_idx(BUNDLED / "images-idx3-ubyte.gz"), read_idx(BUNDLED / "labels-idx1-ubyte.gz")


# --------------------------------------------------------------------------------------------
# The bundled subset


def test_bundled_shapes_and_dtypes(bundled: MnistSplit) -> None:
    assert bundled.train_images.shape == (8000, 28, 28)
    assert bundled.test_images.shape == (2000, 28, 28)
    assert bundled.train_labels.shape == (8000,)
    assert bundled.test_labels.shape == (2000,)
    assert bundled.train_images.dtype == np.uint8 and bundled.test_images.dtype == np.uint8
    assert bundled.train_labels.dtype == np.int64 and bundled.test_labels.dtype == np.int64
    assert bundled.source == "bundled 10k subset, stratified 80/20 split (seed 0)"


def test_bundled_class_counts_and_pixel_range(bundled: MnistSplit) -> None:
    labels = np.concatenate([bundled.train_labels, bundled.test_labels])
    assert dict(enumerate(np.bincount(labels, minlength=10).tolist())) == BUNDLED_COUNTS
    images = np.concatenate([bundled.train_images, bundled.test_images])
    assert images.min() == 0 and images.max() == 255
    # Real digits are mostly background: a decoding error (wrong offset or byte order) breaks this.
    assert 0.7 < (images == 0).mean() < 0.9


def test_bundled_split_is_stratified(bundled: MnistSplit) -> None:
    test_counts = np.bincount(bundled.test_labels, minlength=10)
    train_counts = np.bincount(bundled.train_labels, minlength=10)
    for cls, total in BUNDLED_COUNTS.items():
        assert train_counts[cls] + test_counts[cls] == total
        assert abs(test_counts[cls] - 0.2 * total) <= 1, f"class {cls}: {test_counts[cls]} of {total} in test"


def test_bundled_split_is_a_partition(bundled: MnistSplit, bundled_raw) -> None:
    images, labels = bundled_raw
    train_idx, test_idx = stratified_split(labels)
    assert np.array_equal(bundled.train_images, images[train_idx])
    assert np.array_equal(bundled.test_images, images[test_idx])
    assert np.array_equal(bundled.test_labels, labels[test_idx])
    # Independently of the indices: train + test hold exactly the digits of the whole file.
    assert row_counter(bundled.train_images, bundled.test_images) == row_counter(images)


def test_bundled_load_is_deterministic_and_cached() -> None:
    mnist.clear_cache()
    first = load_mnist()
    assert load_mnist() is first, "a repeated call should come from the cache"
    mnist.clear_cache()
    second = load_mnist()
    assert second is not first, "clear_cache should force a fresh read"
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name


def test_bundled_split_depends_on_seed(bundled: MnistSplit) -> None:
    other = load_mnist(seed=1)
    assert other.source.endswith("(seed 1)")
    # Same per-class sizes, different digits.
    assert np.array_equal(np.bincount(other.test_labels), np.bincount(bundled.test_labels))
    assert row_counter(other.test_images) != row_counter(bundled.test_images)


def test_bundled_arrays_are_read_only(bundled: MnistSplit) -> None:
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        arr = getattr(bundled, name)
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
        with pytest.raises(ValueError):
            arr.flags.writeable = True
    assert load_mnist().train_labels[0] == bundled.train_labels[0]


def test_bundled_dir_passed_explicitly_uses_the_cache(bundled: MnistSplit) -> None:
    assert load_mnist(BUNDLED) is load_mnist()


def test_other_test_fraction(bundled_raw) -> None:
    split = load_mnist(test_fraction=0.5)
    assert len(split.test_labels) == sum(round(0.5 * c) for c in BUNDLED_COUNTS.values())
    assert split.source == "bundled 10k subset, stratified 50/50 split (seed 0)"


def test_verify_checksums_passes_on_bundled_data() -> None:
    verify_checksums(BUNDLED)  # must not raise


# --------------------------------------------------------------------------------------------
# stratified_split


@pytest.mark.parametrize("test_fraction", [0.0, 0.1, 0.2, 0.35, 1.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_stratified_split_properties(test_fraction: float, seed: int) -> None:
    labels = np.random.default_rng(3).integers(0, 10, size=997)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    assert train_idx.dtype == np.int64 and test_idx.dtype == np.int64
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(test_idx) > 0)
    assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(labels.size))
    for cls in range(10):
        assert np.sum(labels[test_idx] == cls) == round(test_fraction * np.sum(labels == cls))
    again = stratified_split(labels.copy(), test_fraction, seed)
    assert np.array_equal(again[0], train_idx) and np.array_equal(again[1], test_idx)


def test_stratified_split_golden_values() -> None:
    # Pins the algorithm itself (class order, one PCG64 stream): changing it changes every grade.
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    train_idx, test_idx = stratified_split(labels, 0.4, seed=0)
    rng = np.random.Generator(np.random.PCG64(0))
    expected = np.sort(
        np.concatenate([rng.permutation([0, 2, 4, 6, 8])[:2], rng.permutation([1, 3, 5, 7, 9])[:2]])
    )
    assert np.array_equal(test_idx, expected)
    assert np.array_equal(train_idx, np.setdiff1d(np.arange(10), expected))


@pytest.mark.parametrize(
    ("labels", "test_fraction"),
    [(np.zeros((2, 2), dtype=int), 0.2), (np.zeros(4), 0.2), (np.zeros(4, dtype=int), 1.5)],
)
def test_stratified_split_rejects_bad_arguments(labels: np.ndarray, test_fraction: float) -> None:
    with pytest.raises(ValueError):
        stratified_split(labels, test_fraction)


# --------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips(tmp_path: Path, dtype: str, suffix: str) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    shape = (3, 4, 5)
    if info is not None:
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        arr = (rng.standard_normal(shape) * 1e3).astype(dtype)
    out = read_idx(write_idx(tmp_path / f"x.idx{suffix}", arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    assert np.array_equal(out, arr)
    out[0, 0, 0] = 0  # a plain read returns a writable array


@pytest.mark.parametrize("shape", [(0,), (7,), (2, 3), (1, 1, 1, 1)])
def test_read_idx_shapes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    assert np.array_equal(read_idx(write_idx(tmp_path / "x", arr)), arr)


def test_read_idx_is_big_endian(tmp_path: Path) -> None:
    # Hand-written bytes, so a symmetric byte-order bug in encode_idx and read_idx cannot hide.
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    assert read_idx(path).tolist() == [258, -2]


def test_read_idx_detects_gzip_by_content(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(encode_idx(arr)))
    assert np.array_equal(read_idx(path), arr)


# --------------------------------------------------------------------------------------------
# Errors


def _idx_u8() -> bytes:
    return encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("bad-magic", b"\x01\x00" + _idx_u8()[2:], ["bad IDX magic", "not an IDX file"]),
        ("bad-dtype", _idx_u8()[:2] + b"\x0a" + _idx_u8()[3:], ["unknown IDX dtype code 0x0a"]),
        ("zero-dims", b"\x00\x00\x08\x00", ["0 dimensions"]),
        ("tiny", b"\x00\x00", ["too short", "truncated"]),
        ("cut-header", _idx_u8()[:10], ["3 dimensions", "truncated"]),
        ("truncated", _idx_u8()[:-1], ["payload is 23 bytes", "need exactly 24", "truncated"]),
        ("trailing", _idx_u8() + b"\x00\x00", ["payload is 26 bytes", "extra trailing bytes"]),
        ("bad.gz", b"this is not gzip at all", ["not a valid gzip file"]),
        ("cut.gz", gzip.compress(_idx_u8())[:-10], ["not a valid gzip file", "truncated"]),
    ],
)
def test_read_idx_rejects_malformed_files(
    tmp_path: Path, name: str, content: bytes, fragments: list[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MnistError) as exc:
        read_idx(path)
    message = str(exc.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope-idx1-ubyte.gz"
    with pytest.raises(MnistError, match="does not exist") as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_mnist_error_is_a_value_error() -> None:
    assert issubclass(MnistError, ValueError)


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0], digits(9, 0)[1]),
            ["has 10 images", "has 9 labels", "do not belong together"],
            id="count-mismatch",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0], np.array([0, 1, 2, 11, 4, 5, 6, 7, 8, 9], np.uint8)),
            ["label 11 at index 3", "outside 0..9", "labels-idx1-ubyte.gz"],
            id="label-11",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0], np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10], np.uint8)),
            ["label 10 at index 9", "outside 0..9"],
            id="label-10",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0], np.array([0, 1, -1, 3, 4, 5, 6, 7, 8, 9], np.int8)),
            ["label -1 at index 2", "outside 0..9"],
            id="label-negative",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0].astype(np.int16), digits(10, 0)[1]),
            ["int16", "expected uint8", "images-idx3-ubyte.gz"],
            id="images-not-uint8",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0].reshape(10, 784), digits(10, 0)[1]),
            ["shape (10, 784)", "expected uint8 (N, 28, 28)"],
            id="images-not-3d",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(10, 0)[0], digits(10, 0)[1].astype(np.float32)),
            ["float32", "expected 1-D integer labels"],
            id="labels-float",
        ),
        pytest.param(
            lambda d: write_pair(d, digits(0, 0)[0], digits(0, 0)[1]),
            ["holds no samples"],
            id="empty",
        ),
    ],
)
def test_load_rejects_bad_pairs(tmp_path: Path, make, fragments: list[str]) -> None:
    make(tmp_path)
    with pytest.raises(MnistError) as exc:
        load_mnist(tmp_path)
    message = str(exc.value)
    assert str(tmp_path) in message
    for fragment in fragments:
        assert fragment in message


@pytest.fixture
def bundled_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "mnist"
    shutil.copytree(BUNDLED, copy)
    for p in copy.iterdir():
        p.chmod(0o644)  # the bundled data files are read-only in the checkout
    return copy


def test_corrupted_copy_of_bundled_dir(bundled_copy: Path) -> None:
    target = bundled_copy / "images-idx3-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(MnistError) as exc:
        load_mnist(bundled_copy)
    message = str(exc.value)
    assert str(target) in message
    assert "sha256 mismatch" in message
    assert "expected 8b3000c0568dc201ba9f67d637f7b50c8a913dee51c45b01976bcf4c0141e5c7" in message
    assert f"actual {hashlib.sha256(bytes(data)).hexdigest()}" in message
    assert "the file is corrupt or was modified" in message
    with pytest.raises(MnistError, match="sha256 mismatch"):
        verify_checksums(bundled_copy)


@pytest.fixture
def relocated_root(tmp_path: Path, bundled_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root (via GRADELAB_ROOT) whose data/mnist is ``bundled_copy``, so load_mnist()
    takes the bundled code path on files the test may damage."""
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    bundled_copy.rename(root / "data" / "mnist")
    monkeypatch.setenv("GRADELAB_ROOT", str(root))
    mnist.clear_cache()
    yield root / "data" / "mnist"
    mnist.clear_cache()


def test_bundled_load_verifies_checksums(relocated_root: Path) -> None:
    target = relocated_root / "labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[-12] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(MnistError) as exc:
        load_mnist()
    message = str(exc.value)
    assert str(target) in message
    assert "expected 6c62c36dd8e3fe02a794f5397b3e0b9992b414dd69fb65456d03ee5596fb1fe7" in message
    assert "restore it from git" in message


def test_bundled_load_requires_sums(relocated_root: Path) -> None:
    (relocated_root / "SHA256SUMS").unlink()
    with pytest.raises(MnistError, match="SHA256SUMS: missing; restore it from git"):
        load_mnist()


def test_intact_copy_of_bundled_dir_loads_the_same_split(bundled_copy: Path, bundled: MnistSplit) -> None:
    split = load_mnist(bundled_copy)
    assert np.array_equal(split.test_images, bundled.test_images)
    assert np.array_equal(split.train_labels, bundled.train_labels)


def test_file_listed_in_sums_but_missing(bundled_copy: Path) -> None:
    (bundled_copy / "labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistError) as exc:
        verify_checksums(bundled_copy)
    assert str(bundled_copy / "labels-idx1-ubyte.gz") in str(exc.value)
    assert "missing" in str(exc.value)


def test_malformed_sums_file(tmp_path: Path) -> None:
    write_pair(tmp_path, *digits(10, 0))
    (tmp_path / "SHA256SUMS").write_text("deadbeef  images-idx3-ubyte.gz\n")
    with pytest.raises(MnistError, match="malformed line") as exc:
        load_mnist(tmp_path)
    assert str(tmp_path / "SHA256SUMS") in str(exc.value)


def test_verify_checksums_without_sums_is_a_noop(tmp_path: Path) -> None:
    write_pair(tmp_path, *digits(10, 0))
    verify_checksums(tmp_path)  # must not raise


def test_empty_directory_lists_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(MnistError) as exc:
        load_mnist(tmp_path)
    message = str(exc.value)
    assert str(tmp_path) in message
    for name in (
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "images-idx3-ubyte",
        "labels-idx1-ubyte",
    ):
        assert name in message


def test_partial_full_layout_is_reported(tmp_path: Path) -> None:
    images, labels = digits(20, 0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(MnistError, match="found only") as exc:
        load_mnist(tmp_path)
    assert "t10k-images-idx3-ubyte[.gz]" in str(exc.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MnistError, match="not a directory") as exc:
        load_mnist(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(exc.value)


# --------------------------------------------------------------------------------------------
# User directories


@pytest.fixture
def full_layout(tmp_path: Path) -> tuple[Path, tuple[np.ndarray, ...]]:
    """A tmp dir laid out like the full MNIST distribution, mixing .gz and raw files."""
    train_images, train_labels = digits(50, 1)
    test_images, test_labels = digits(20, 2)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", train_labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", test_labels)
    return tmp_path, (train_images, train_labels, test_images, test_labels)


def test_full_layout_uses_the_official_split(full_layout) -> None:
    directory, (train_images, train_labels, test_images, test_labels) = full_layout
    split = load_mnist(directory, test_fraction=0.5, seed=3)  # both ignored for the official split
    assert np.array_equal(split.train_images, train_images)
    assert np.array_equal(split.train_labels, train_labels)
    assert np.array_equal(split.test_images, test_images)
    assert np.array_equal(split.test_labels, test_labels)
    assert split.train_labels.dtype == np.int64 and split.train_images.dtype == np.uint8
    assert "official train/t10k split (50/20)" in split.source
    assert not split.train_images.flags.writeable


def test_full_layout_checks_sums_when_present(full_layout) -> None:
    directory, _ = full_layout
    write_sums(directory)
    load_mnist(directory)  # valid sums: loads
    (directory / "t10k-images-idx3-ubyte").write_bytes(encode_idx(digits(20, 9)[0]))
    with pytest.raises(MnistError, match="sha256 mismatch"):
        load_mnist(directory)


def test_both_layouts_in_one_directory_is_ambiguous(full_layout) -> None:
    directory, _ = full_layout
    write_pair(directory, *digits(10, 0))
    with pytest.raises(MnistError, match="ambiguous"):
        load_mnist(directory)


@pytest.mark.parametrize("gz", [True, False])
def test_single_pair_is_split_stratified(tmp_path: Path, gz: bool) -> None:
    images, labels = digits(100, 4)
    write_pair(tmp_path, images, labels, gz=gz)
    write_sums(tmp_path)
    split = load_mnist(tmp_path, seed=5)
    train_idx, test_idx = stratified_split(labels, 0.2, 5)
    assert np.array_equal(split.train_images, images[train_idx])
    assert np.array_equal(split.test_labels, labels[test_idx])
    assert np.bincount(split.test_labels).tolist() == [2] * 10
    assert split.source == f"{tmp_path} (100 samples), stratified 80/20 split (seed 5)"
