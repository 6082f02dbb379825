"""The wire format between the grader and the child that runs student code.

A frame is ``b"GLAB"``, a 4-byte header length, an 8-byte body length (both big-endian),
a UTF-8 JSON header and a body of arrays in NumPy's ``.npz`` format. Arrays are read with
``allow_pickle=False``, and nothing else is ever deserialised, so whatever the child sends
is data: it can be wrong, but it cannot run code in the grader.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import time
import zipfile
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"GLAB"
_PREFIX = struct.Struct(">4sIQ")
MAX_HEADER = 1 << 20
MAX_BODY = 1 << 30  # a request to the child (inputs: the MNIST training set is ~50 MB as float64)
MAX_REPLY = 128 << 20  # a reply from the child: far above any case's outputs, far below the grader's memory


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame."""


class ChannelClosed(ProtocolError):
    """The other side closed the channel (the child exited or was killed)."""


class Timeout(Exception):
    """No complete frame arrived before the deadline."""


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_arrays(body: bytes) -> dict[str, np.ndarray]:
    """Arrays from an npz body; raises ProtocolError for anything that is not plain numeric data."""
    if not body:
        return {}
    _check_members(body)
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - any parse failure means garbage
        raise ProtocolError(f"unreadable arrays ({type(exc).__name__}: {exc})") from exc
    for k, v in arrays.items():
        if v.dtype.kind not in "biufU":
            raise ProtocolError(f"array {k!r} has unsupported dtype {v.dtype}")
    return arrays


def _check_members(body: bytes) -> None:
    """Only uncompressed members whose declared sizes fit MAX_BODY: no decompression bombs."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ProtocolError(f"unreadable arrays ({exc})") from exc
    if any(i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size for i in infos):
        raise ProtocolError("compressed arrays are not accepted")
    if sum(i.file_size for i in infos) > len(body):
        raise ProtocolError("array sizes do not add up")


def pack(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    return _PREFIX.pack(MAGIC, len(head), len(body)) + head + body


def write_frame(stream: BinaryIO, header: dict[str, Any], body: bytes = b"") -> None:
    stream.write(pack(header, body))
    stream.flush()


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes]:
    """Blocking read of one frame from a file object (the child's side)."""
    prefix = _read_exact(stream.read, _PREFIX.size)
    head_len, body_len = _check_prefix(prefix)
    header = _parse_header(_read_exact(stream.read, head_len))
    return header, _read_exact(stream.read, body_len)


def _wait(fd: int, deadline: float, *, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Timeout()
    ready = select.select([], [fd], [], remaining)[1] if write else select.select([fd], [], [], remaining)[0]
    if not ready:
        raise Timeout()


def read_frame_fd(fd: int, deadline: float, max_body: int | None = None) -> tuple[dict[str, Any], bytes]:
    """Read one frame from a raw fd, giving up at ``deadline`` (time.monotonic()): the grader's side.

    A body larger than ``max_body`` is refused from its declared length, before any of it is
    read (default ``MAX_REPLY``); the body is read into one buffer of its declared length."""

    def read(n: int) -> bytes:
        _wait(fd, deadline)
        return os.read(fd, min(n, 1 << 20))

    prefix = _read_exact(read, _PREFIX.size)
    head_len, body_len = _check_prefix(prefix, MAX_REPLY if max_body is None else max_body)
    header = _parse_header(_read_exact(read, head_len))
    body = bytearray(body_len)
    view, got = memoryview(body), 0
    while got < body_len:
        _wait(fd, deadline)
        n = os.readv(fd, [view[got:got + (1 << 20)]])
        if n == 0:
            raise ChannelClosed("the channel closed mid-frame")
        got += n
    return header, bytes(body)


def write_frame_fd(fd: int, data: bytes, deadline: float) -> None:
    """Writes ``data`` (a packed frame) to a raw fd, giving up at ``deadline``: a child that stops
    reading its stdin cannot block the grader. Leaves the fd non-blocking."""
    os.set_blocking(fd, False)
    view, sent = memoryview(data), 0
    while sent < len(data):
        _wait(fd, deadline, write=True)
        try:
            sent += os.write(fd, view[sent:sent + (1 << 20)])
        except BlockingIOError:
            continue


def _read_exact(read: Any, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = read(n - got)
        if not chunk:
            raise ChannelClosed("the channel closed mid-frame" if got else "the channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _check_prefix(prefix: bytes, max_body: int = MAX_BODY) -> tuple[int, int]:
    magic, head_len, body_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r} (something else wrote to the channel)")
    if head_len > MAX_HEADER or body_len > max_body:
        raise ProtocolError(f"frame too large (header {head_len} B, body {body_len} B)")
    return head_len, body_len


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode())
    except (ValueError, RecursionError) as exc:  # deep nesting is a RecursionError, not a JSON error
        raise ProtocolError(f"unreadable header ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header is not an object")
    return header
