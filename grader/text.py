"""Text that came from a submission (file names, error messages), made safe to store and print.

A submission's file names may hold bytes that are not UTF-8 and its errors lone surrogates; the
gradebook (SQLite), JSON, CSV and terminals in any locale must take them without a crash.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) and lone surrogates as ``\\udcff``-style
    escapes: safe for UTF-8 files, SQLite, JSON and any terminal."""
    try:  # undecodable bytes of a file name (surrogate escapes) as \\xe9, like the bytes they were
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate from an error message: \\ud800
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
