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
MAX_BODY = 1 << 30


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


def read_frame_fd(fd: int, deadline: float) -> tuple[dict[str, Any], bytes]:
    """Read one frame from a raw fd, giving up at ``deadline`` (time.monotonic()): the grader's side."""

    def read(n: int) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            raise Timeout()
        return os.read(fd, min(n, 1 << 20))

    prefix = _read_exact(read, _PREFIX.size)
    head_len, body_len = _check_prefix(prefix)
    header = _parse_header(_read_exact(read, head_len))
    return header, _read_exact(read, body_len)


def _read_exact(read: Any, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = read(n - got)
        if not chunk:
            raise ChannelClosed("the channel closed mid-frame" if got else "the channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _check_prefix(prefix: bytes) -> tuple[int, int]:
    magic, head_len, body_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r} (something else wrote to the channel)")
    if head_len > MAX_HEADER or body_len > MAX_BODY:
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
