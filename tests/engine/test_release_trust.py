"""Issue 15, items 8 and 10: the release check reads what a release ships as a student could,
and the student workflow never gives student code a write token.

Item 8: a real release (built once per module) gets one solution line hidden in each carrier a
student can open without decoding anything: a notebook's outputs (a traceback prints source
lines, an HTML output splits them into coloured spans), a .tgz, .tar.xz and .tar.bz2 member, a
.bz2 stream, an archive inside an archive inside an archive, UTF-16 text with and without a
byte-order mark, and the string arrays of an .npz (unicode, bytes, objects). ``release.check``
must name the file and the member of each. The same carriers holding no solution code pass, and
a decompression bomb, archives nested past the depth limit and a file the check cannot open are
reported instead of hanging the check or passing unread.

Item 10: the generated workflow, parsed as YAML: the job that runs student code has read-only
permissions and no token; the job that writes runs none of it and reads the results from an
artifact; every action is pinned by commit SHA; pull requests from forks skip the comment with a
notice.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader.course import release

pytestmark = pytest.mark.usefixtures("solutions")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "solutions").is_dir():
        pytest.skip("no solutions/ (student release)")
    out = tmp_path_factory.mktemp("trust") / "lab1-release"
    release.build(["lab1"], out, root=ROOT, git=False, log=lambda *_: None)
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "rel"
    shutil.copytree(built, dst)
    return dst


@pytest.fixture(scope="module")
def secret() -> tuple[str, str]:
    """One of Lab 1's solution lines (as written, indented) and where it comes from."""
    index = release.leak_index(ROOT / "solutions")
    key, origin = max(((k, o) for k, o in index.lines.items() if o.path.startswith("solutions/lab1/")),
                      key=lambda item: len(item[0]))
    source = (ROOT / origin.path).read_text().splitlines()[origin.line - 1]
    assert " ".join(source.split()) == key or key in source
    return source, f"{origin.path}:{origin.line}"


# --------------------------------------------------------------------------- archives


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _ansi(line: str) -> str:
    """The line as IPython colours it: escape codes between the tokens."""
    return " ".join(f"\x1b[38;5;28;01m{word}\x1b[39;00m" for word in line.split())


def _notebook_with_outputs(path: Path, line: str) -> tuple[int, int]:
    """Appends two cells whose only copies of ``line`` are in their outputs: a traceback (IPython's
    gutter, terminal colours) and an HTML rendering (one span per token). Returns their indexes."""
    nb = json.loads(path.read_text())
    traceback = ["\x1b[0;31m" + "-" * 75 + "\x1b[0m",
                 "\x1b[0;31mValueError\x1b[0m                                Traceback (most recent call last)",
                 f"Cell \x1b[0;32mIn[3], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m x \x1b[38;5;241m=\x1b[39m f()\n"
                 f"\x1b[0;32m----> 2\x1b[0m {_ansi(line)}\n",
                 "\x1b[0;31mValueError\x1b[0m: shapes do not match"]
    spans = " ".join(f'<span class="n">{word.replace("<", "&lt;")}</span>' for word in line.split())
    nb["cells"] += [
        {"cell_type": "code", "id": "tb", "metadata": {}, "execution_count": 3, "source": ["run()\n"],
         "outputs": [{"output_type": "error", "ename": "ValueError", "evalue": "shapes do not match",
                      "traceback": traceback}]},
        {"cell_type": "code", "id": "html", "metadata": {}, "execution_count": 4, "source": ["show()\n"],
         "outputs": [{"output_type": "display_data", "metadata": {},
                      "data": {"text/plain": ["<Code>"], "text/html": [f"<pre>{spans}</pre>"]}}]},
    ]
    path.write_text(json.dumps(nb, indent=1))
    return len(nb["cells"]) - 2, len(nb["cells"]) - 1


def _carriers(rel: Path, text: str) -> dict[str, str]:
    """Puts ``text`` into one file per carrier under ``rel/data/``; returns the "where" each
    problem must name, by carrier."""
    data = rel / "data"
    body = f"notes\n{text}\nmore notes\n".encode()
    (data / "a.tgz").write_bytes(gzip.compress(_tar({"docs/a.py": body})))
    (data / "b.tar.xz").write_bytes(lzma.compress(_tar({"b/b.py": body})))
    (data / "c.tar.bz2").write_bytes(_tar({"c.txt": body}, "w:bz2"))
    (data / "d.txt.bz2").write_bytes(bz2.compress(body))
    inner_zip = _zip({"deep/e.py": body})
    (data / "e.tar.xz").write_bytes(lzma.compress(_tar({"pack.tgz": gzip.compress(_tar({"e.zip": inner_zip}))})))
    (data / "f16.txt").write_bytes(body.decode().encode("utf-16"))  # with a byte-order mark
    (data / "g16le.bin").write_bytes(b"\x89BIN\x00" + body.decode().encode("utf-16-le") + b"\xff\x00")
    (data / "k.py").write_bytes(codecs.BOM_UTF16_LE + body)  # a byte-order mark as a decoy before UTF-8
    lines = ["x", *text.splitlines(), "y"]
    np.savez(data / "h.npz", notes=np.array(lines))
    np.savez(data / "i.npz", raw=np.array([s.encode() for s in lines]))
    np.savez(data / "j.npz", objects=np.array(lines, dtype=object))
    return {"tgz": "data/a.tgz!docs/a.py", "tar.xz": "data/b.tar.xz!b/b.py", "tar.bz2": "data/c.tar.bz2!c.txt",
            "bz2": "data/d.txt.bz2", "nested": "data/e.tar.xz!pack.tgz!e.zip!deep/e.py",
            "utf-16": "data/f16.txt (UTF-16 text)", "utf-16 without BOM": "data/g16le.bin (UTF-16 text)",
            "UTF-8 behind a UTF-16 BOM": "data/k.py:2 ",
            "npz unicode": "data/h.npz!notes.npy", "npz bytes": "data/i.npz!raw.npy",
            "npz objects": "data/j.npz!objects.npy"}


# --------------------------------------------------------------------------- item 8


def test_a_solution_line_is_found_in_every_carrier_with_file_and_member_named(copy: Path,
                                                                              secret: tuple[str, str]) -> None:
    line, origin = secret
    wheres = _carriers(copy, line)
    tb, html_cell = _notebook_with_outputs(copy / "notebooks" / "lab1.ipynb", line)
    problems = release.check(copy)
    leaks = [p for p in problems if p.startswith("leak: ")]
    assert len(leaks) == len(problems), problems  # nothing else is wrong with the release
    for carrier, where in wheres.items():
        found = [p for p in leaks if p.startswith(f"leak: {where}") and origin in p]
        assert found, f"{carrier}: nothing names {where} ({origin}):\n" + "\n".join(leaks)
    assert any(p.startswith(f"leak: notebooks/lab1.ipynb[cell {tb}/output 0/traceback]") and origin in p
               for p in leaks), leaks
    assert any(p.startswith(f"leak: notebooks/lab1.ipynb[cell {html_cell}/output 0/data/text/html]")
               and origin in p for p in leaks), leaks
    # a text file: the row is named (the line is the second)
    assert any(p.startswith("leak: data/a.tgz!docs/a.py:2 ") for p in leaks), leaks


def test_a_multi_line_block_is_found_in_a_nested_archive(copy: Path) -> None:
    """Re-wrapped and in a zip in a .tgz: the whitespace-free block index still finds it."""
    index = release.leak_index(ROOT / "solutions")
    block = next(s for s in index.blocks if s.lab == "lab1" and len(s.text) > 60)
    wrapped = "\n".join(block.text[i:i + 7] for i in range(0, len(block.text), 7))  # no whole line survives
    (copy / "data" / "w.tgz").write_bytes(gzip.compress(_tar({"w.zip": _zip({"w.py": wrapped.encode()})})))
    problems = release.check(copy)
    assert f"leak: data/w.tgz!w.zip!w.py contains a multi-line solution block from {block.origin}" in problems


def test_the_same_carriers_without_solution_code_pass(copy: Path) -> None:
    """No false alarm from the new readers: the carriers, the notebook outputs, all clean."""
    _carriers(copy, "    return np.zeros_like(x)  # not the reference: a comment and a generic line")
    _notebook_with_outputs(copy / "notebooks" / "lab1.ipynb", "total = sum(scores) / len(scores)")
    assert release.check(copy) == []


def test_a_decompression_bomb_is_reported_not_scanned_forever(copy: Path) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as f:
        zeros = bytes(1 << 20)
        for _ in range((release.MAX_UNPACKED >> 20) + 8):
            f.write(zeros)
    (copy / "data" / "bomb.gz").write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < release.MAX_UNPACKED // 100  # small on disk, huge unpacked
    (copy / "data" / "many.zip").write_bytes(_zip({f"m/{i}.txt": b"" for i in range(release.MAX_MEMBERS + 1)}))
    problems = release.check(copy)
    assert any(p.startswith("data/bomb.gz: unpacks to more than") for p in problems), problems
    assert any(p.startswith(f"data/many.zip: holds more than {release.MAX_MEMBERS} archive members")
               for p in problems), problems


def test_archives_nested_past_the_limit_and_unreadable_files_are_reported(copy: Path,
                                                                          secret: tuple[str, str]) -> None:
    data = f"{secret[0]}\n".encode()
    for _ in range(release.MAX_DEPTH + 2):
        data = gzip.compress(data)
    (copy / "data" / "deep.gz").write_bytes(data)
    (copy / "data" / "x.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64))
    locked = bytearray(_zip({"locked.py": f"{secret[0]}\n".encode()}))
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set "encrypted" in both headers
        at = locked.index(header) + flags_at
        locked[at] |= 0x1
    (copy / "data" / "locked.zip").write_bytes(bytes(locked))
    (copy / "data" / "seeds.zip").write_bytes(_zip({"tests/lab1/hidden.toml": b"seeds = [1]\n"}))
    problems = release.check(copy)
    assert any(p.startswith("data/deep.gz: nested more than") for p in problems), problems
    assert any(p.startswith("data/x.7z: a 7z file") for p in problems), problems
    assert any(p.startswith("data/locked.zip!locked.py: a zip member that does not unpack") for p in problems)
    assert any(p.startswith("data/seeds.zip!tests/lab1/hidden.toml must not be in a release") for p in problems)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_text_is_read_whole_across_the_search_windows(codec: str) -> None:
    """UTF-16/32 runs are searched in windows (bounded memory): a line cut by a window's end is
    read whole from the overlap, at any alignment and in either byte order."""
    line = "out = self.weight @ x + self.bias"
    data = bytearray(release._WINDOW + 2 * release._OVERLAP)
    at = release._WINDOW - 31  # odd: the runs do not start on a unit boundary of the window
    data[at:at + 4 * len(line)] = line.encode(codec).ljust(4 * len(line), b"\x00")
    texts = list(release._wide_runs("blob", bytes(data)))
    assert [t.where for t in texts] == [f"blob (UTF-{16 if '16' in codec else 32} text)"]
    assert line in texts[0].text.split("\n")


def test_cli_check_fails_on_a_leak_in_a_tar_member(copy: Path, secret: tuple[str, str]) -> None:
    (copy / "data" / "extra.tar.xz").write_bytes(lzma.compress(_tar({"x/y.py": f"{secret[0]}\n".encode()})))
    done = subprocess.run([sys.executable, "-m", "grader.cli", "release", "--check", str(copy)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^leak: data/extra\.tar\.xz!x/y\.py:1 contains solution code", done.stdout, re.M), done.stdout


# --------------------------------------------------------------------------- item 10

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
# The only commands a job that can write may run: none of them runs code from the repository.
ALLOWED_COMMANDS = {"echo", "cp", "cd", "git", "mktemp", "base64"}


def _commands(script: str) -> list[str]:
    """The command word of every simple command in a shell script (enough for these scripts)."""
    found = []
    for part in re.split(r"\n|&&|\|\||;|\||\$\(", script):
        words = part.strip().split()
        while words and re.match(r"^\w+=", words[0]):  # a variable assignment before the command
            words = words[1:]
        if words:
            found.append(words[0].rstrip(")"))
    return found


@pytest.fixture(scope="module")
def workflows(built: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, str]]:
    """The workflow of a plain release and of a --classroom one: (parsed, text)."""
    yaml = pytest.importorskip("yaml")
    out = tmp_path_factory.mktemp("trust-classroom") / "rel"
    release.build(["lab1"], out, classroom=True, git=False, log=lambda *_: None)
    found = {}
    for kind, rel in (("plain", built), ("classroom", out)):
        text = (rel / release.WORKFLOW).read_text()
        found[kind] = (yaml.safe_load(text), text)
    return found


def _writes(job: dict) -> bool:
    perms = job.get("permissions")
    return not isinstance(perms, dict) or any(v == "write" for v in perms.values())  # absent: the default


@pytest.mark.parametrize("kind", ["plain", "classroom"])
def test_student_code_runs_with_a_read_only_token_and_no_secret(workflows: dict, kind: str) -> None:
    wf, _ = workflows[kind]
    assert wf["permissions"] == {}  # no job inherits a default (which may be write-all)
    graders = [name for name, job in wf["jobs"].items()
               if any("scripts/ci.sh" in s.get("run", "") for s in job["steps"])]
    assert graders == ["grade"]
    job = wf["jobs"]["grade"]
    assert job["permissions"] == {"contents": "read"}
    for step in job["steps"]:
        text = json.dumps(step)
        assert "secrets." not in text and "github.token" not in text, step
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False  # no token in .git/config for the code under test
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == ".gradelab/"


@pytest.mark.parametrize("kind", ["plain", "classroom"])
def test_jobs_that_can_write_run_no_code_of_the_repository(workflows: dict, kind: str) -> None:
    wf, _ = workflows[kind]
    writers = {name: job for name, job in wf["jobs"].items() if _writes(job)}
    assert set(writers) == ({"publish", "classroom"} if kind == "classroom" else {"publish"})
    assert _commands(wf["jobs"]["grade"]["steps"][3]["run"]) == ["bash"]  # the test sees commands at all
    artifact = next(s["with"]["name"] for s in wf["jobs"]["grade"]["steps"]
                    if s.get("uses", "").startswith("actions/upload-artifact@"))
    for name, job in writers.items():
        assert job["needs"] == "grade", name
        uses = [s.get("uses", "").split("@")[0] for s in job["steps"]]
        assert "actions/checkout" not in uses, name  # the repository's code is not even there
        assert uses[0] == "actions/download-artifact" and job["steps"][0]["with"]["name"] == artifact, name
        for step in job["steps"]:
            assert set(_commands(step.get("run", ""))) <= ALLOWED_COMMANDS, (name, step["run"])
            for value in json.dumps(step.get("run", "")).split("${{")[1:]:  # artifact data never in a shell line
                assert "outputs" not in value.split("}}")[0], (name, step["run"])


@pytest.mark.parametrize("kind", ["plain", "classroom"])
def test_every_action_is_pinned_by_commit_sha_as_the_table_says(workflows: dict, kind: str) -> None:
    wf, text = workflows[kind]
    table = dict(re.findall(r"^#\s+([\w.-]+/[\w.-]+)\s+([0-9a-f]{40})\s+v\d", text, re.M))
    assert len(table) >= 5
    uses = [s["uses"] for job in wf["jobs"].values() for s in job["steps"] if "uses" in s]
    assert len(uses) == (7 if kind == "classroom" else 5)
    for ref in uses:
        assert SHA_PIN.match(ref), ref
        action, sha = ref.split("@")
        assert table.get(action) == sha, f"{ref}: the table at the top of the workflow says {table.get(action)}"
    # each pin says which release it is, for the person who updates it
    for line in text.splitlines():
        if re.match(r"\s+(- )?uses:", line):
            assert re.search(r"@[0-9a-f]{40} # v\d", line), line


class _Null:
    """A missing value in a GitHub expression: null, equal to nothing but null."""

    def __getattr__(self, name: str) -> _Null:
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Null)

    def __hash__(self) -> int:
        return 0


class _Ctx(dict):
    def __getattr__(self, name: str) -> object:
        value = self.get(name, _Null())
        return _Ctx(value) if isinstance(value, dict) else value


def _runs(condition: str | None, github: dict) -> bool:
    """Evaluates the small subset of GitHub's expressions these `if:`s use (==, !=, &&, ||,
    property access, string literals, always(), !cancelled())."""
    if condition is None:
        return True
    expr = condition.strip().removeprefix("${{").removesuffix("}}")
    expr = expr.replace("!cancelled()", "True").replace("always()", "True")
    expr = expr.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\w.' ()=!:-]*", expr.replace("/", "")), condition  # nothing else to evaluate
    return bool(eval(expr, {"__builtins__": {}}, {"github": _Ctx(github), "True": True}))  # noqa: S307


def _steps_run(wf: dict, job: str, github: dict) -> list[str]:
    return [s["name"] for s in wf["jobs"][job]["steps"] if _runs(s.get("if"), github)]


def test_pull_requests_from_forks_skip_the_comment_with_a_notice(workflows: dict) -> None:
    wf, _ = workflows["plain"]
    repo = "course/lab1-alice"
    own = {"event_name": "pull_request", "repository": repo, "ref_name": "3/merge",
           "event": {"repository": {"default_branch": "main"},
                     "pull_request": {"head": {"repo": {"full_name": repo}}}}}
    fork = {**own, "event": {**own["event"], "pull_request": {"head": {"repo": {"full_name": "mallory/lab1"}}}}}
    push = {"event_name": "push", "repository": repo, "ref_name": "main",
            "event": {"repository": {"default_branch": "main"}}}
    comment, notice, badge = ("Post the score table on the pull request",
                              "Skip the comment on a pull request from a fork", "Publish the badge")
    assert _runs(wf["jobs"]["publish"].get("if"), own)
    assert {comment, notice, badge} & set(_steps_run(wf, "publish", own)) == {comment}
    assert {comment, notice, badge} & set(_steps_run(wf, "publish", fork)) == {notice}
    assert {comment, notice, badge} & set(_steps_run(wf, "publish", push)) == {badge}
    assert {comment, notice, badge} & set(_steps_run(wf, "publish", {**push, "ref_name": "feature"})) == set()
    step = next(s for s in wf["jobs"]["publish"]["steps"] if s["name"] == notice)
    assert step["run"].strip().startswith('echo "::notice::')
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"push", "pull_request"}  # never pull_request_target (a write token on a fork's code)
