"""The child side of isolated grading: imports the submission and runs cases on request.

Started by ``grader.isolation.sandbox`` inside the sandbox as
``python -I -S -c BOOT <stage> <lab> <site-dir>...``. It speaks ``grader.isolation.protocol`` over what
were its stdin and stdout; the student's own prints go to ``<stage>/work/output.log``.
Nothing here decides a grade: it only returns arrays (or the student's traceback).

The worker never asks the operating system for anything the submission can use up once student
code has run: its one helper thread (which reads the grader's requests and dumps the stack when
the grader is about to stop a case) starts before the submission is imported. A submission that
fills its process cap therefore cannot stop the worker (a thread per case, as
``faulthandler.dump_traceback_later`` starts, could not be created then).
"""

from __future__ import annotations

import faulthandler
import os
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

from grader.judging.compare import describe_non_numeric

from . import libraries, protocol
from .loading import LoadError, load_cases, load_package, student_traceback


def _take_channel() -> tuple[object, object]:
    """Moves the protocol off fds 0/1, and sends stdout to the grader's log (fd 2).

    Student prints then cannot corrupt a frame by accident.
    """
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    return proto_in, proto_out


def _outputs(result: object) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Splits a case's return value into sendable arrays and descriptions of the rest."""
    if not isinstance(result, dict):
        return {}, {"*": f"the case returned a {type(result).__name__}, not a dict"}
    arrays, invalid = {}, {}
    for name, value in result.items():
        problem = describe_non_numeric(value)
        if problem:
            invalid[str(name)] = problem
        else:
            arrays[str(name)] = np.asarray(value)
    return arrays, invalid


DUMP_HEADER = "Timeout (0:00:00)!"  # the line ``runner.timeout_frames`` looks for, as faulthandler writes it


def _dump_stack() -> None:
    """Writes every thread's stack to the log (fd 2), which the grader reads: the report can then
    say which line of the student's code was running when its time ran out."""
    try:
        os.write(2, f"\n{DUMP_HEADER}\n".encode())
        faulthandler.dump_traceback(file=2, all_threads=True)
    except OSError:
        pass


def _serve_requests(proto_in: object, requests: queue.SimpleQueue) -> None:
    """The helper thread: hands case requests to the main thread; answers a dump request at once
    (the main thread is busy in student code then). None means the grader closed the channel."""
    while True:
        try:
            header, body = protocol.read_frame(proto_in)
        except protocol.ProtocolError:
            requests.put(None)
            return
        if header.get("dump"):
            _dump_stack()
        else:
            requests.put((header, body))


def main(argv: list[str]) -> None:
    stage, lab_name = Path(argv[0]), argv[1]
    proto_in, proto_out = _take_channel()
    requests: queue.SimpleQueue = queue.SimpleQueue()
    # started before any student code runs: it needs no new process slot later
    threading.Thread(target=_serve_requests, args=(proto_in, requests), daemon=True, name="grader").start()
    lab = load_cases(lab_name, stage / "tests")
    impl_root = stage / "submission"
    libraries.install(lab_name)
    try:
        impl, import_error = load_package(impl_root, lab_name), None
    except LoadError as exc:
        impl, import_error = None, str(exc)
    protocol.write_frame(proto_out, {"status": "ready"})
    while True:
        request = requests.get()
        if request is None:
            return
        header, body = request
        case, request_id = lab.get(header["case"]), header["id"]
        inputs = protocol.decode_arrays(body)
        start = time.perf_counter()
        if impl is None:
            protocol.write_frame(proto_out, {"id": request_id, "status": "error", "error": import_error})
            continue
        try:
            result = case.call(impl, inputs)
        except BaseException as exc:  # SystemExit too: a case must never end the worker
            protocol.write_frame(proto_out, {"id": request_id, "status": "error",
                                             "error": student_traceback(exc, impl_root / lab_name)})
            continue
        arrays, invalid = _outputs(result)
        protocol.write_frame(proto_out, {"id": request_id, "status": "ok", "invalid": invalid,
                                         "seconds": time.perf_counter() - start},
                             protocol.encode_arrays(arrays))
