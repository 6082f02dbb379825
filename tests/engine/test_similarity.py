"""``gradelab similarity`` (grader/course/similarity.py) on a class built to measure it.

The class: the reference; two Lab 1 solutions written independently of it and of each other
(``examples/lab1-student-a.patch`` and ``-b.patch``, patches of the stubs; both score full marks);
two disguised copies of student A (names changed, comments added, lines re-broken and spaced);
and a byte-for-byte copy of student B. Copies must rank above every independent pair and reach
the threshold; independent solutions must stay below it, although they share the whole template.
The figures are printed (``-s``) for the README: ``pytest tests/engine/test_similarity.py -s``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

from grader import paths
from grader.cli import main as cli_main
from grader.isolation.loading import load_cases
from grader.runner import grade

LAB = load_cases("lab1", paths.tests_dir())
FAST = [c.name for c in LAB.cases if c.name != "mnist_accuracy"]
RENAMES = {"_x": "_saved_input", "out": "result", "dx": "grad_in", "logp": "log_prob", "picked": "chosen",
           "onehot": "one_hot", "pos": "nonneg", "_positive": "_on", "_t": "_tanh_out", "flat": "pixels",
           "g": "upstream"}
COPIES = {("anna", "anna-renamed"), ("anna", "anna-reformatted"), ("anna-reformatted", "anna-renamed"),
          ("ben", "ben-dup")}


@pytest.fixture(scope="module")
def similarity():
    try:
        from grader.course import similarity
        similarity._copydetect()
    except Exception as exc:  # noqa: BLE001 - SimilarityError: the extra is not installed
        if os.environ.get("CI"):
            pytest.fail(f"copydetect is required in CI (scripts/setup.sh installs the similarity extra): {exc}")
        pytest.skip(str(exc))
    return similarity


def renamed(text: str) -> str:
    """A copier's disguise: other names, a comment before every return."""
    for old, new in RENAMES.items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}\b|(?<=self\.){re.escape(old)}\b", new, text)
    return re.sub(r"^( +)return ", r"\1# compute and give back the result\n\1return ", text, flags=re.M)


def reformatted(text: str) -> str:
    """Another disguise: every NumPy call's arguments on lines of their own, spaces around commas, blank lines."""
    text = re.sub(r"np\.(\w+)\(", r"np.\1(\n                ", text)
    return text.replace(", ", " ,  ").replace("\n        return", "\n\n        return")


def stubs_plus(patch: str, dest: Path) -> Path:
    shutil.copytree(paths.labs_dir() / "lab1", dest / "lab1", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "apply", str(paths.project_root() / "examples" / patch)], cwd=dest, check=True)
    return dest


def disguised(source: Path, dest: Path, how) -> Path:
    shutil.copytree(source, dest)
    for f in (dest / "lab1").glob("*.py"):
        f.write_text(how(f.read_text()))
    return dest


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> dict[str, Path]:
    solutions_dir = paths.solutions_dir()
    if not solutions_dir.is_dir():
        pytest.skip("no solutions/ (student release)")
    top = tmp_path_factory.mktemp("class")
    subs = {"ref": top / "ref"}
    shutil.copytree(solutions_dir / "lab1", subs["ref"] / "lab1",
                    ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    subs["anna"] = stubs_plus("lab1-student-a.patch", top / "anna")
    subs["ben"] = stubs_plus("lab1-student-b.patch", top / "ben")
    subs["anna-renamed"] = disguised(subs["anna"], top / "anna-renamed", renamed)
    subs["anna-reformatted"] = disguised(subs["anna"], top / "anna-reformatted", reformatted)
    subs["ben-dup"] = disguised(subs["ben"], top / "ben-dup", lambda t: t)
    return subs


def test_the_class_is_what_it_claims(klass) -> None:
    """Every member is a correct solution (the fast cases, in-process), and the disguises changed text."""
    for name, root in klass.items():
        result = grade(LAB, root, isolated=False, only=FAST)
        assert [c.name for c in result.cases if not c.passed] == [], name
    for copy in ("anna-renamed", "anna-reformatted"):
        assert (klass[copy] / "lab1" / "losses.py").read_text() != (klass["anna"] / "lab1" / "losses.py").read_text()


def test_copies_rank_on_top_and_independent_solutions_stay_below_the_threshold(similarity, klass, tmp_path,
                                                                                  capsys) -> None:
    out = tmp_path / "report"
    assert cli_main(["similarity", "lab1", *map(str, klass.values()), "--out", str(out), "--top", "15"]) == 0
    printed = capsys.readouterr().out
    pairs = [tuple(line.split()[1:3]) for line in printed.splitlines() if re.match(r"^ +\d\.\d\d  ", line)]
    figures = {tuple(sorted(p)): float(line.split()[0]) for p, line in
               zip(pairs, [ln for ln in printed.splitlines() if re.match(r"^ +\d\.\d\d  ", ln)], strict=True)}
    assert len(pairs) == 15  # 6 submissions
    assert {tuple(sorted(p)) for p in pairs[:len(COPIES)]} == COPIES, printed  # the copies first
    for pair, figure in figures.items():
        if pair in COPIES:
            assert figure >= similarity.THRESHOLD, (pair, figure)
        else:
            assert figure < similarity.THRESHOLD, (pair, figure)
    assert re.search(r"^ +1\.00  ben  ben-dup  IDENTICAL FILES$", printed, re.M), printed
    with capsys.disabled():  # the measured figures, for the README
        print("\n" + printed)
    page = (out / similarity.REPORT_NAME).read_text()
    assert page.count("<div class='pair'>") == len(COPIES)  # the flagged pairs, side by side
    assert "<script" not in page and "<link" not in page and "http" not in page


def test_without_leaving_the_template_out_independent_solutions_would_look_copied(similarity, klass) -> None:
    """Why the stubs are left out: fingerprinting whole files, template included (copydetect's plain use),
    makes two independent solutions near-identical; on their own lines they share nothing of note."""
    cd = similarity._copydetect()

    def whole(name: str):
        text = "".join(f.read_text() for f in sorted((klass[name] / "lab1").glob("*.py")))
        return cd.CodeFingerprint("x.py", similarity.NOISE, similarity.GUARANTEE - similarity.NOISE + 1,
                                  fp=io.StringIO(text))

    _, shares, _ = cd.compare_files(whole("anna"), whole("ben"))
    print(f"\nwhole files, template included: anna vs ben {shares[0]:.2f} / {shares[1]:.2f}")
    assert max(shares) > 0.8, shares
    mine = similarity.compare("lab1", [klass["anna"], klass["ben"]])
    assert mine.pairs[0].similarity < 0.1, mine.pairs


def test_figures_do_not_depend_on_the_process(similarity, klass) -> None:
    """copydetect hashes with Python's salted hash(); ours is fixed, so two runs give the same figures."""
    code = ("from grader.course import similarity; import sys; from pathlib import Path\n"
            "r = similarity.compare('lab1', [Path(p) for p in sys.argv[1:]])\n"
            "print([round(p.similarity, 6) for p in r.pairs])")
    args = [str(klass[n]) for n in ("ref", "anna", "ben")]
    runs = {subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1, runs


def test_own_code_is_what_differs_from_the_stubs_by_tokens(similarity, tmp_path) -> None:
    stub = tmp_path / "stub"
    mine = tmp_path / "mine"
    stub.mkdir()
    mine.mkdir()
    (stub / "m.py").write_text('def f(x):\n    """Doc\n    string."""\n    raise NotImplementedError\n')
    (mine / "m.py").write_text('def  f( y ):\n    """Other\n    words."""\n    return y * 2  # mine\n')
    (mine / "extra.py").write_text("z = 1\n")
    own = similarity.own_code(mine, stub)
    assert own == "# ---- extra.py:1 ----\nz = 1\n# ---- m.py:4 ----\n    return y * 2  # mine\n"


def test_provided_packages_are_not_compared(similarity) -> None:
    assert similarity.provided_packages("lab2") == ["lab1"] and similarity.provided_packages("lab1") == []


def test_bad_input_is_a_usage_error(similarity, tmp_path, capsys) -> None:
    assert cli_main(["similarity", "lab9", str(tmp_path)]) == 2
    assert "unknown lab 'lab9'" in capsys.readouterr().err
    assert cli_main(["similarity", "lab1", str(tmp_path / "nobody")]) == 2
    assert "no such submission folder" in capsys.readouterr().err


def test_every_pair_is_listed_once(similarity, klass) -> None:
    result = similarity.compare("lab1", list(klass.values()))
    assert {(p.a, p.b) for p in result.pairs} == set(combinations(sorted(klass), 2))


@pytest.mark.parametrize("patch, base", [
    ("lab1-buggy.patch", "solutions"), ("lab1-buggy-2.patch", "solutions"), ("lab1-broken.patch", "solutions"),
    ("lab1-student-a.patch", "labs"), ("lab1-student-b.patch", "labs"), ("lab1-student-a-copy.patch", "labs")])
def test_the_demo_class_patches_still_apply(patch, base, tmp_path) -> None:
    """scripts/demo_class.sh builds its class from these: a change of the reference or the stubs must not
    silently break it."""
    root = paths.solutions_dir() if base == "solutions" else paths.labs_dir()
    if not root.is_dir():
        pytest.skip(f"no {base}/ (student release)")
    shutil.copytree(root / "lab1", tmp_path / "lab1", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(["git", "apply", "--check", str(paths.project_root() / "examples" / patch)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
