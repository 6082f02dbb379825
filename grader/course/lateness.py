"""When a submission was handed in, and what lateness costs under a lab's late policy.

Where the time comes from, first found wins (the gradebook records which):

* ``nbgrader``: ``timestamp.txt`` in the submission folder, written by ``nbgrader collect``
  (``2027-02-01 23:10:05.123456 UTC``);
* ``gradescope``: ``submission_metadata.json`` in the folder (Gradescope's ``created_at``);
* ``git``: the committer time of the last commit of a clone (GitHub Classroom). A student can
  forge commit dates: use it for honest courses, or collect the push times from Classroom;
* ``mtime``: the newest modification time of the lab's files, the last resort (copying a folder
  can reset it).

A late policy (``LatePolicy``) has a deadline, a number of late days accepted, and a penalty in
percent of the score per started day late; past the hard cut-off (by default the deadline plus
the late days) the submission scores 0. With ``d`` started days late (``d = ceil((t - deadline) /
1 day)`` for ``t > deadline``, else 0)::

    adjusted = raw * max(0, 1 - penalty_per_day / 100 * d)   if t <= cutoff
    adjusted = 0                                             if t > cutoff
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY = timedelta(days=1)


@dataclass(frozen=True)
class SubmissionTime:
    when: datetime  # aware, UTC
    source: str  # nbgrader | gradescope | git | mtime


@dataclass(frozen=True)
class LatePolicy:
    deadline: datetime
    late_days: int = 0
    penalty_per_day: float = 0.0  # percent of the score per started day late
    cutoff: datetime | None = None  # default: deadline + late_days

    @property
    def hard_cutoff(self) -> datetime:
        return self.cutoff or self.deadline + self.late_days * DAY


@dataclass(frozen=True)
class Lateness:
    days_late: int  # started days after the deadline (0 when on time)
    factor: float  # what the raw score is multiplied by
    note: str  # '' when on time, else what was applied

    def adjust(self, raw: float) -> float:
        return round(raw * self.factor, 6)


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 or nbgrader's ``%Y-%m-%d %H:%M:%S.%f %Z`` (UTC only).
    A time without a zone is taken as UTC. Raises ValueError otherwise."""
    text = text.strip()
    for suffix in (" UTC", " GMT", "Z"):
        if text.endswith(suffix):
            text = text[: -len(suffix)] + "+00:00"
            break
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _from_nbgrader(folder: Path) -> datetime | None:
    f = folder / "timestamp.txt"
    return parse_time(f.read_text()) if f.is_file() and not f.is_symlink() else None


def _from_gradescope(folder: Path) -> datetime | None:
    f = folder / "submission_metadata.json"
    if not f.is_file() or f.is_symlink():
        return None
    created = json.loads(f.read_text()).get("created_at")
    return parse_time(str(created)) if created else None


def _from_git(folder: Path) -> datetime | None:
    if not (folder / ".git").exists():
        return None
    # The clone is the student's: no pager, no system or global config, any owner; `log` runs no
    # hook or fsmonitor, and only the commit's time is read.
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}
    try:
        out = subprocess.run(["git", "--no-pager", "-c", "safe.directory=*", "-c", "core.fsmonitor=false",
                              "-C", str(folder), "log", "-1", "--format=%cI", "HEAD"],
                             capture_output=True, text=True, timeout=20, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_time(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def _from_mtime(folder: Path, lab: str) -> datetime | None:
    if folder.is_file():  # a zip handed in as it is
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC)
    top = folder / lab if (folder / lab).is_dir() else folder
    newest = None
    for dirpath, _dirs, files in os.walk(top, followlinks=False):
        for name in files:
            try:
                m = os.lstat(os.path.join(dirpath, name)).st_mtime
            except OSError:
                continue
            newest = m if newest is None else max(newest, m)
    return datetime.fromtimestamp(newest, UTC) if newest is not None else None


def submission_time(folder: Path, lab: str) -> SubmissionTime | None:
    """When ``folder`` was handed in, from the first source that has it (see the module docstring);
    None when nothing says (an empty folder). A source whose file cannot be parsed is skipped."""
    for source, read in (("nbgrader", _from_nbgrader), ("gradescope", _from_gradescope), ("git", _from_git)):
        try:
            when = read(Path(folder))
        except (OSError, ValueError, json.JSONDecodeError, AttributeError):
            when = None
        if when is not None:
            return SubmissionTime(when, source)
    when = _from_mtime(Path(folder), lab)
    return SubmissionTime(when, "mtime") if when is not None else None


def lateness(policy: LatePolicy, when: datetime | None) -> Lateness:
    """What ``policy`` does to a submission handed in at ``when`` (None: unknown, not penalised)."""
    if when is None or when <= policy.deadline:
        return Lateness(0, 1.0, "")
    days = math.ceil((when - policy.deadline) / DAY)
    if when > policy.hard_cutoff:
        return Lateness(days, 0.0, f"{days} day(s) late, past the cut-off {policy.hard_cutoff:%Y-%m-%d %H:%M} UTC: 0")
    factor = max(0.0, 1.0 - policy.penalty_per_day / 100.0 * days)
    return Lateness(days, factor, f"{days} day(s) late: -{policy.penalty_per_day:g}% per day, x{factor:g}")
