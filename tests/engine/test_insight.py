"""The instructor's view of a class (``summary.md``/``summary.html``, grader/course/report.py).

A class of real submissions is graded in the sandbox on a few cases (about 2 s), and the page is
rendered by a real headless Chromium: the dumped DOM must show the mistakes table with its
counts and links, and a screenshot's bars must be drawn on a 0-100% scale. Chromium is Debian's
``chromium`` (scripts/setup.sh installs it as root); in CI a missing browser fails these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader.cli import main as cli_main
from grader.course import gradebook, report

CASES = ["linear_backward_bias", "linear_gradients_accumulate", "relu_forward", "softmax_ce_extreme_logits"]
FAST = [a for c in CASES for a in ("--case", c)] + ["--timeout-scale", "0.5", "--no-progress", "--jobs", "2"]
BIAS_MEAN = ("self.bias.grad += grad_output.sum(axis=0)", "self.bias.grad += grad_output.mean(axis=0)")
NO_SHIFT = ("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits")
KNOWN_BIAS = "averaging over the batch (mean) instead of summing: the 1/N belongs to the loss"
BAR_BLUE = (0x2F, 0x5F, 0xA0)  # .bar in report._CSS: the pass-rate bars
TRACK_GREY = (0xE6, 0xE6, 0xE6)  # .track: the 0-100% scale behind each bar


def chromium() -> str:
    """Debian's chromium; skipped on a developer's machine without it, a failure in CI."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("CI"):
        pytest.fail("chromium is required in CI (scripts/setup.sh installs it as root)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def render(page: Path, tmp_path: Path, *args: str) -> str:
    """Runs headless Chromium on ``page`` (file://, no network) and returns its stdout."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Tables(HTMLParser):
    """Rows of the tables with an id, as cell texts and the links in each row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[list[str], list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append(([], []))
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "a" and self._table and self.tables[self._table]:
            self.tables[self._table][-1][1].append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1][0].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(dom: str) -> dict[str, list[tuple[list[str], list[str]]]]:
    parser = _Tables()
    parser.feed(dom)
    return parser.tables


@pytest.fixture
def graded_class(sandbox, patched_reference, tmp_path) -> Path:
    """sec1/alice correct, sec1/bob and sec2/carol with the bias-gradient bug (carol also an unstable
    softmax), sec2/dan whose package does not import, sec2/eve with no package at all."""
    subs = [patched_reference("subs/sec1/alice", {}),
            patched_reference("subs/sec1/bob", {"layers.py": [BIAS_MEAN]}),
            patched_reference("subs/sec2/carol", {"layers.py": [BIAS_MEAN], "losses.py": [NO_SHIFT]}),
            patched_reference("subs/sec2/dan", {"layers.py": [("class ReLU(Module):\n", "class ReLU(Module)\n")]})]
    eve = tmp_path / "subs" / "sec2" / "eve"
    (eve / "notes").mkdir(parents=True)
    out = tmp_path / "out"
    assert cli_main(["grade", "lab1", *map(str, [*subs, eve]), "--out", str(out), *FAST]) == 0
    return out


@pytest.mark.sandbox
@pytest.mark.browser
def test_the_class_page_in_a_browser_shows_who_made_which_mistake(graded_class, tmp_path) -> None:
    page = graded_class / "summary.html"
    text = page.read_text()
    assert "<script" not in text and "<link" not in text and "src=" not in text and "http" not in text
    got = tables(render(page, tmp_path, "--dump-dom"))
    mistakes = {cells[0]: (cells, links) for cells, links in got["mistakes"][1:]}
    cells, links = mistakes[KNOWN_BIAS]
    assert cells[1:3] == ["known mistake", "2"]
    assert links == ["submissions/sec1/bob/feedback.md", "submissions/sec2/carol/feedback.md"]
    assert mistakes["SoftmaxCrossEntropy is not numerically stable"][0][1:3] == ["diagnosis", "1"]
    assert "sec2/carol" in mistakes["SoftmaxCrossEntropy is not numerically stable"][0][3]
    kinds = [(cells[1], int(cells[2])) for cells, _ in got["mistakes"][1:]]
    assert kinds == sorted(kinds, key=lambda k: (k[0] != "known mistake", -k[1]))  # known first, most students first
    students = {cells[0]: (cells, links) for cells, links in got["students"][1:]}
    assert students["sec1/bob"][1] == ["submissions/sec1/bob/feedback.md"]
    assert (graded_class / students["sec1/bob"][1][0]).is_file()  # the link leads to the feedback
    assert students["sec2/dan"][0][5].startswith("not imported: the package could not be imported: SyntaxError")
    assert students["sec2/eve"][0][5].startswith("not graded: no lab1/ package")
    sections = {cells[0]: cells for cells, _ in got["sections"][1:]}
    # bob keeps 8 of 16 points, carol 3 (bias, accumulation, stability lost), dan 0; eve is not graded.
    assert sections["sec1"][1:] == ["2", "2", "75.0", "75.0", "0"]
    assert sections["sec2"][1:] == ["3", "2", "9.4", "9.4", "1"]
    cases = {cells[0]: cells for cells, _ in got["cases"][1:]}
    # Over alice, bob, carol: dan did not import and eve was not graded; neither counts as failing.
    assert cases["relu_forward"][1] == "100%" and cases["linear_backward_bias"][1] == "33%"
    assert cases["linear_backward_bias"][3] == "8"  # bob and carol lose its 4 points each
    assert cases["softmax_ce_extreme_logits"][1] == "67%"
    assert set(cases) == set(CASES)  # the cases nobody ran are left out
    md = (graded_class / "summary.md").read_text()
    assert f"| {KNOWN_BIAS} | known mistake | 2 | [sec1/bob](submissions/sec1/bob/feedback.md), " in md


def _bars(png: Path) -> list[float]:
    """Each pass-rate bar's drawn share of its 0-100% track, top to bottom, from the screenshot's pixels."""
    from PIL import Image  # matplotlib's dependency: installed with the nbgrader and similarity extras

    img = Image.open(png).convert("RGB")
    w, h = img.size
    px = img.load()
    bands: list[list[tuple[int, int]]] = []  # one per bar: each pixel row's (blue, grey) counts
    inside = False
    for y in range(h):
        blue = sum(1 for x in range(w) if px[x, y] == BAR_BLUE)
        grey = sum(1 for x in range(w) if px[x, y] == TRACK_GREY)
        if blue + grey >= 100:  # a row through a track (its edges are anti-aliased: use the band's middle)
            if not inside:
                bands.append([])
            bands[-1].append((blue, grey))
        inside = blue + grey >= 100
    return [band[len(band) // 2][0] / sum(band[len(band) // 2]) for band in bands]


@pytest.mark.browser
def test_pass_rate_bars_are_drawn_on_a_0_to_100_scale(tmp_path) -> None:
    """10 of 13 pass case a (77%), 5 of 13 case b; an ungradable 14th is not counted as failing. The
    highest rate must not draw a full bar (it did when bars were scaled to the highest rate)."""
    points = {"a": 2.0, "b": 3.0}
    rows = [gradebook.Row(f"sec{i % 2}/s{i:02d}", "", "lab1", 0, 5, {"a": 2.0 if i < 10 else 0.0,
                                                                    "b": 3.0 if i < 5 else 0.0},
                          "sandbox (bubblewrap)", "", 1.0, f"h{i}", "k") for i in range(13)]
    rows.append(gradebook.Row("sec0/late", "", "lab1", 0, 5, {"a": 0.0, "b": 0.0}, "none (not graded)", "", 0.0,
                              "no-package", "k", "no lab1/ package in the submission"))
    for r in rows:
        r.score = sum(r.cases.values())
    summary = report.class_summary(rows, points)
    assert summary["pass_rate"] == {"a": 10 / 13, "b": 5 / 13}
    page = tmp_path / "summary.html"
    page.write_text(report.summary_html(summary, "Lab 1"))
    shot = tmp_path / "shot.png"
    render(page, tmp_path, "--window-size=1000,2000", "--force-device-scale-factor=1", f"--screenshot={shot}")
    shares = _bars(shot)
    assert len(shares) == 2, shares
    assert shares[0] == pytest.approx(10 / 13, abs=0.01) and shares[1] == pytest.approx(5 / 13, abs=0.01), shares


def test_findings_name_mistakes_and_diagnoses_once_and_ignore_what_the_student_printed() -> None:
    message = ("linear_backward_bias (seed 0) failed:\nLinear.backward: bias.grad: ...\n"
               "  hint: got = numeric x 0.25 everywhere (= 1/N (the batch size)): divided by N\n"
               f"  hint: matches a known mistake: {KNOWN_BIAS}\n  hint: matches a known mistake: {KNOWN_BIAS}\n"
               "  hint: the differences are only in rows [0, 3]\n"
               "ConventionError: SoftmaxCrossEntropy is not numerically stable: NumPy reports 'overflow'\n"
               "--- what your code printed ---\n  hint: matches a known mistake: I did nothing wrong")
    assert report.findings(message) == [
        (report.DIAGNOSIS, "got = numeric x a constant everywhere (= 1/N (the batch size)): divided by N"),
        (report.KNOWN, KNOWN_BIAS),
        (report.DIAGNOSIS, "the differences are only in rows [...]"),
        (report.DIAGNOSIS, "SoftmaxCrossEntropy is not numerically stable")]


def test_feedback_links_keep_the_id_path_and_escape_the_rest() -> None:
    assert report.feedback_link("sec1/alice") == "submissions/sec1/alice/feedback.md"
    assert report.feedback_link("sec 1/a#b") == "submissions/sec%201/a%23b/feedback.md"


# ------------------------------------------------------------------ feedback and errors ready to send

@pytest.mark.sandbox
def test_an_import_failure_is_one_message_in_the_feedback(graded_class) -> None:
    fb = (graded_class / "submissions" / "sec2" / "dan" / "feedback.md").read_text()
    assert fb.count("could not be imported") == 1 and "SyntaxError: expected ':'" in fb, fb
    assert "| `relu_forward` | 0 / 3 | not run |" in fb
    assert "What went wrong" not in fb and "pytest" not in fb and "gradelab-stage" not in fb, fb
    assert "Every case passed" not in fb


def test_feedback_has_no_grader_temporary_paths() -> None:
    from grader.runner import CaseResult, LabResult

    stage = "/tmp/gradelab-stage-4242-abcd/submission/"
    result = LabResult("lab1", "Lab 1", "subs/x", "sandbox (bubblewrap)",
                       [CaseResult("relu_forward", 0.0, 3.0, "relu_forward: not run", 0.0, import_error="e"),
                        CaseResult("linear_forward", 0.0, 4.0, "linear_forward: not run", 0.0, import_error="e")],
                       import_error=f"importing your package lab1/ failed:\nFileNotFoundError: '{stage}lab1/w.txt'")
    fb = report.feedback_markdown(result, "x")
    assert "FileNotFoundError: 'lab1/w.txt'" in fb and "gradelab-stage" not in fb and "/tmp" not in fb, fb
    assert fb.count("not run") == 2  # the table's two rows; their messages are not repeated below


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_one_line_error_at_once(tmp_path, capsys) -> None:
    pytest.importorskip("distributed")
    import time

    start = time.monotonic()
    code = cli_main(["grade", "lab1", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress",
                     "--scheduler", f"tcp://127.0.0.1:{_free_port()}", "--case", "relu_forward"])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "cannot connect" in err and "is the scheduler running" in err
    assert seconds < 10, seconds  # Dask alone waited 30 s, then printed 16 frames


def test_gradescope_usage_errors_are_messages(tmp_path, capsys) -> None:
    assert cli_main(["gradescope", "lab9", "--out", str(tmp_path / "a.zip")]) == 2
    assert "unknown lab 'lab9'; the labs are: lab1," in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli_main(["gradescope", "lab1", "--out", str(blocker / "sub" / "a.zip")]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "Traceback" not in err, err


@pytest.mark.sandbox
def test_identical_submissions_are_flagged(sandbox, patched_reference, tmp_path, capsys) -> None:
    subs = [patched_reference("subs/sec1/alice", {}), patched_reference("subs/sec2/zoe", {}),
            patched_reference("subs/sec2/bob", {"layers.py": [BIAS_MEAN]})]
    out = tmp_path / "out"
    assert cli_main(["grade", "lab1", *map(str, subs), "--out", str(out), "--case", "relu_forward",
                     "--no-progress", "--jobs", "2"]) == 0
    assert "identical submissions (the same files, byte for byte): sec1/alice, sec2/zoe\n" in capsys.readouterr().out
    assert "## Identical submissions (same files, byte for byte)\n\n- sec1/alice, sec2/zoe\n" in (
        out / "summary.md").read_text()


def test_student_text_on_the_page_is_escaped() -> None:
    """Ids are folder names and reasons come from submissions: neither may add markup to the page."""
    row = gradebook.Row("sec1/<img src=x onerror=alert(1)>", "", "lab1", 0, 3, {"a": 0.0}, "sandbox (bubblewrap)",
                        "", 0.0, "h", "k", "the package could not be imported: <script>alert(1)</script>")
    page = report.summary_html(report.class_summary([row], {"a": 3.0}), "Lab <1>")
    assert "<img" not in page and "<script" not in page and "&lt;script&gt;" in page and "Lab &lt;1&gt;" in page
    tables(page)  # still parses
