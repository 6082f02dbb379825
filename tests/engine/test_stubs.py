"""grader.authoring.stubs: solution regions -> stubs, the release rule, and the drift/leak check."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from grader import paths
from grader.authoring.stubs import Region, StubError, check, generate, make_stub, run, solution_regions, write


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def todo(indent: str, qualname: str) -> str:
    """The two lines a region becomes."""
    return (
        f"{indent}# TODO: your code here (see the docstring above).\n"
        f'{indent}raise NotImplementedError("{qualname}: not implemented yet")\n'
    )


def load(stub: str) -> dict:
    """Execute a stub as a module and return its namespace."""
    namespace: dict = {}
    exec(compile(stub, "<stub>", "exec"), namespace)
    return namespace


# --------------------------------------------------------------------------- make_stub

METHOD = src('''
    import numpy as np


    class ReLU:
        def forward(self, x):
            """ReLU: y = max(x, 0) elementwise."""
            # Hint: np.maximum does not modify x.
            ### BEGIN SOLUTION
            self._mask = x > 0
            return np.maximum(x, 0.0)
            ### END SOLUTION

        def backward(self, grad):
            return grad * self._mask
    ''')


def test_method_region_keeps_docstring_hint_and_other_code_exactly() -> None:
    expected = METHOD.replace(
        "        ### BEGIN SOLUTION\n"
        "        self._mask = x > 0\n"
        "        return np.maximum(x, 0.0)\n"
        "        ### END SOLUTION\n",
        todo(" " * 8, "ReLU.forward"),
    )
    assert expected != METHOD  # the replacement above really happened
    stub = make_stub(METHOD)
    assert stub == expected
    assert '"""ReLU: y = max(x, 0) elementwise."""' in stub
    assert "# Hint: np.maximum does not modify x." in stub
    assert "np.maximum(x, 0.0)" not in stub and "self._mask = x > 0" not in stub


def test_method_stub_raises_naming_the_method() -> None:
    namespace = load(make_stub(METHOD))
    with pytest.raises(NotImplementedError, match=r"^ReLU\.forward: not implemented yet$"):
        namespace["ReLU"]().forward(1.0)


TOP_LEVEL = src('''
    def relu(x):
        """max(x, 0)."""
        ### BEGIN SOLUTION
        return max(x, 0)
        ### END SOLUTION
    ''')

TWO_REGIONS = src('''
    def fit(data):
        """Two tasks in one function, with provided code between them."""
        ### BEGIN SOLUTION
        total = sum(data)
        ### END SOLUTION
        count = len(data)  # provided
        ### BEGIN SOLUTION
        return total / count
        ### END SOLUTION
    ''')

NESTED_FUNCTION = src("""
    def outer():
        def inner():
            ### BEGIN SOLUTION
            return 1
            ### END SOLUTION
        return inner
    """)

ASYNC_IN_CLASS_IN_FUNCTION = src("""
    def factory():
        class Thing:
            async def go(self):
                ### BEGIN SOLUTION
                return 2
                ### END SOLUTION
        return Thing
    """)


@pytest.mark.parametrize(
    ("source", "qualname", "call"),
    [
        (TOP_LEVEL, "relu", lambda ns: ns["relu"](3)),
        (TWO_REGIONS, "fit", lambda ns: ns["fit"]([1, 2])),
        (NESTED_FUNCTION, "outer.<locals>.inner", lambda ns: ns["outer"]()()),
        (
            ASYNC_IN_CLASS_IN_FUNCTION,
            "factory.<locals>.Thing.go",
            lambda ns: ns["factory"]()().go().send(None),
        ),
    ],
    ids=["top-level", "two-regions", "nested-function", "async-method-in-local-class"],
)
def test_stub_compiles_and_raises_with_python_qualname(source, qualname, call) -> None:
    stub = make_stub(source)
    with pytest.raises(NotImplementedError) as raised:
        call(load(stub))
    assert str(raised.value) == f"{qualname}: not implemented yet"
    assert "BEGIN SOLUTION" not in stub and "END SOLUTION" not in stub


def test_two_regions_in_one_function_keep_the_provided_code_between() -> None:
    stub = make_stub(TWO_REGIONS)
    assert stub.count("raise NotImplementedError") == 2
    assert "    count = len(data)  # provided\n" in stub
    assert "sum(data)" not in stub and "total / count" not in stub
    assert [r.qualname for r in solution_regions(TWO_REGIONS)] == ["fit", "fit"]


def test_tab_indentation_is_kept() -> None:
    head = 'class A:\n\tdef f(self):\n\t\t"""Doc."""\n'
    source = head + "\t\t### BEGIN SOLUTION\n\t\treturn 1\n\t\t### END SOLUTION\n"
    stub = make_stub(source)
    assert stub == head + todo("\t\t", "A.f")
    with pytest.raises(NotImplementedError, match="A.f"):
        load(stub)["A"]().f()


def test_crlf_line_endings_are_kept_byte_for_byte() -> None:
    source = TOP_LEVEL.replace("\n", "\r\n")
    stub = make_stub(source)
    assert stub == make_stub(TOP_LEVEL).replace("\n", "\r\n")
    assert "\n" not in stub.replace("\r\n", "")


@pytest.mark.parametrize("hashes", ["#", "##", "###", "####"])
@pytest.mark.parametrize("space", ["", " ", "  "])
def test_marker_variants_are_accepted(hashes: str, space: str) -> None:
    source = TOP_LEVEL.replace("### BEGIN", f"{hashes}{space}BEGIN").replace("### END", f"{hashes}{space}END")
    source = source.replace("SOLUTION\n", "SOLUTION   \n")  # trailing whitespace is stripped
    assert make_stub(source) == src('''
        def relu(x):
            """max(x, 0)."""
        ''') + todo("    ", "relu")


def test_markers_inside_strings_are_not_markers() -> None:
    source = src('''
        def explain():
            """Mark tasks like this:

            ### BEGIN SOLUTION
            ### END SOLUTION
            """
            return "### BEGIN SOLUTION"
        ''')
    assert solution_regions(source) == []
    assert make_stub(source) == source


def test_file_without_markers_is_returned_unchanged() -> None:
    source = "import numpy as np\n\n\ndef f(x):  # no tasks here\n    return np.tanh(x)\n"
    assert make_stub(source, "provided.py") == source


def test_solution_regions_reports_qualname_markers_and_code() -> None:
    regions = solution_regions(METHOD, "layers.py")
    assert regions == [
        Region(
            qualname="ReLU.forward",
            start=8,
            end=11,
            lines=("        self._mask = x > 0", "        return np.maximum(x, 0.0)"),
        )
    ]
    with pytest.raises(AttributeError):
        regions[0].start = 1  # type: ignore[misc]  # frozen


# --------------------------------------------------------------------------- StubError

MALFORMED = {
    "begin-without-end": (
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n",
        2,
        "without a matching END",
    ),
    "end-without-begin": (
        "def f():\n    return 1\n    ### END SOLUTION\n",
        3,
        "without a BEGIN",
    ),
    "nested-begin": (
        "def f():\n    ### BEGIN SOLUTION\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n"
        "    ### END SOLUTION\n",
        4,
        "cannot nest",
    ),
    "different-indentation": (
        "def f(x):\n    if x:\n        ### BEGIN SOLUTION\n        return 1\n    ### END SOLUTION\n",
        5,
        "indented differently",
    ),
    "module-level": (
        "### BEGIN SOLUTION\nX = 1\n### END SOLUTION\n",
        1,
        "not inside a function body",
    ),
    "class-level": (
        "class A:\n    ### BEGIN SOLUTION\n    x = 1\n    ### END SOLUTION\n",
        2,
        "not inside a function body",
    ),
    "whole-function": (
        "### BEGIN SOLUTION\ndef f():\n    return 1\n### END SOLUTION\n",
        1,
        "not inside a function body",
    ),
    # The markers sit at class level although the code is in f: the stub's raise would land in
    # the class body (and compile), so it must be refused.
    "markers-at-def-level": (
        "class A:\n    def f(self):\n        '''Doc.'''\n    ### BEGIN SOLUTION\n        return 1\n"
        "    ### END SOLUTION\n",
        4,
        "not inside a function body",
    ),
    "empty": (
        "def f():\n    '''Doc.'''\n    ### BEGIN SOLUTION\n\n    # just a comment\n    ### END SOLUTION\n",
        3,
        "empty solution region",
    ),
    "stub-does-not-compile": (
        "def f(x):\n    ### BEGIN SOLUTION\n    if x:\n    ### END SOLUTION\n        return 1\n",
        5,
        "does not compile",
    ),
    "marker-after-code": (
        "def f():\n    return 1  ### BEGIN SOLUTION\n",
        2,
        "line of its own",
    ),
    "lowercase-marker": (
        "def f():\n    # begin solution\n    return 1\n    # end solution\n",
        2,
        "looks like a solution marker",
    ),
    "plural-marker": (
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTIONS\n",
        4,
        "looks like a solution marker",
    ),
    "not-python": (
        "def f(:\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
        1,
        "not valid Python",
    ),
}


@pytest.mark.parametrize(("source", "line", "problem"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_sources_raise_stub_error_with_file_and_line(source: str, line: int, problem: str) -> None:
    with pytest.raises(StubError) as raised:
        make_stub(source, "solutions/lab9/bad.py")
    message = str(raised.value)
    assert message.startswith(f"solutions/lab9/bad.py:{line}: "), message
    assert problem in message
    assert isinstance(raised.value, ValueError)
    assert (raised.value.filename, raised.value.line) == ("solutions/lab9/bad.py", line)


def test_stub_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(StubError("a.py", 3, "broken")))
    assert (str(error), error.line) == ("a.py:3: broken", 3)


# --------------------------------------------------------------------------- the release

LAYERS = src('''
    import numpy as np

    SCALE = np.float64(1.0)  # provided, and repeated inside a region below


    class Linear:
        def forward(self, x):
            """y = x W + b."""
            ### BEGIN SOLUTION
            SCALE = np.float64(1.0)  # provided, and repeated inside a region below
            self._x = x
            return x @ self.weight + self.bias
            ### END SOLUTION
    ''')

HELPER = src('''
    def clip_gradient(g, limit):
        """Clip g elementwise to [-limit, limit]."""
        ### BEGIN SOLUTION
        return max(-limit, min(limit, g))
        ### END SOLUTION
    ''')

README = "# Lab 1\n\nImplement `Linear.forward`.\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two labs, exercising every branch of the release rule."""
    lab1 = tmp_path / "solutions" / "lab1"
    (lab1 / "sub" / "__pycache__").mkdir(parents=True)
    (lab1 / "__pycache__").mkdir()
    (lab1 / "layers.py").write_text(LAYERS)
    (lab1 / "README.md").write_text(README)
    (lab1 / "hidden.toml").write_text("seeds = [1, 2, 3]\n")
    (lab1 / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\0\0")
    (lab1 / ".notes.md").write_text("instructor scratch\n")
    (lab1 / "sub" / "util.py").write_text(HELPER)
    (lab1 / "sub" / "data.npz").write_bytes(b"PK\0")
    lab2 = tmp_path / "solutions" / "lab2"
    lab2.mkdir()
    (lab2 / "notes.md").write_text("Lab 2 handout\n")
    (tmp_path / "solutions" / "ANSWERS.md").write_text("not in a lab folder\n")
    return tmp_path


@pytest.fixture
def written(project: Path) -> Path:
    """The project after ``write``."""
    write(project / "solutions", project / "labs")
    return project


def problems_of(root: Path) -> list[str]:
    return check(root / "solutions", root / "labs")


def test_generate_follows_the_release_rule(project: Path) -> None:
    release = generate(project / "solutions", project / "labs")
    assert set(release) == {
        Path("lab1/layers.py"),
        Path("lab1/README.md"),
        Path("lab1/sub/util.py"),
        Path("lab2/notes.md"),
    }
    assert release[Path("lab1/layers.py")] == make_stub(LAYERS, "solutions/lab1/layers.py")
    assert release[Path("lab1/sub/util.py")] == make_stub(HELPER)
    assert "Linear.forward: not implemented yet" in release[Path("lab1/layers.py")]
    assert release[Path("lab1/README.md")] == README
    assert not (project / "labs").exists()  # generate only computes


def test_generate_refuses_overlapping_folders(project: Path) -> None:
    with pytest.raises(ValueError, match="separate folders"):
        generate(project / "solutions", project / "solutions" / "lab1")


def test_write_creates_the_release_and_check_is_clean(project: Path) -> None:
    paths_written = write(project / "solutions", project / "labs")
    labs = project / "labs"
    assert sorted(paths_written) == sorted(
        [labs / "lab1/layers.py", labs / "lab1/README.md", labs / "lab1/sub/util.py", labs / "lab2/notes.md"]
    )
    assert not (labs / "lab1" / "hidden.toml").exists()
    assert not (labs / "lab1" / ".notes.md").exists()
    assert not (labs / "ANSWERS.md").exists()
    assert (labs / "lab1" / "README.md").read_text() == README
    assert problems_of(project) == []
    assert write(project / "solutions", labs) == []  # nothing changed, nothing rewritten


def test_write_deletes_stale_files_but_not_pycache(written: Path) -> None:
    labs = written / "labs"
    (written / "solutions" / "lab1" / "sub" / "util.py").unlink()
    (labs / "lab1" / "__pycache__").mkdir()
    (labs / "lab1" / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\0")
    (labs / "old").mkdir()
    (labs / "old" / "gone.py").write_text("x = 1\n")

    write(written / "solutions", labs)

    assert not (labs / "lab1" / "sub").exists()  # emptied folders go too
    assert not (labs / "old").exists()
    assert (labs / "lab1" / "__pycache__" / "layers.cpython-311.pyc").exists()
    assert problems_of(written) == []


def test_check_reports_drift_with_the_first_differing_line(written: Path) -> None:
    stub = written / "labs" / "lab1" / "layers.py"
    lines = stub.read_text().splitlines(keepends=True)
    lines[2] = "SCALE = 2.0\n"
    stub.write_text("".join(lines))
    assert problems_of(written) == [
        "labs/lab1/layers.py differs from the stub generated from solutions/lab1/layers.py "
        "(first difference at line 3); run `gradelab stubs`"
    ]


def test_check_reports_an_edited_handout(written: Path) -> None:
    (written / "labs" / "lab1" / "README.md").write_text(README + "extra\n")
    [problem] = problems_of(written)
    assert problem.startswith("labs/lab1/README.md differs from the handout solutions/lab1/README.md")
    assert "line 4" in problem


def test_check_reports_a_missing_file(written: Path) -> None:
    (written / "labs" / "lab1" / "sub" / "util.py").unlink()
    assert problems_of(written) == [
        "labs/lab1/sub/util.py is missing (generated from solutions/lab1/sub/util.py); run `gradelab stubs`"
    ]


def test_check_reports_an_extra_file(written: Path) -> None:
    (written / "labs" / "lab1" / "scratch.py").write_text("print('hello')\n")
    (written / "labs" / "lab1" / "__pycache__").mkdir()
    (written / "labs" / "lab1" / "__pycache__" / "x.pyc").write_bytes(b"\0")  # ignored
    [problem] = problems_of(written)
    assert problem.startswith("labs/lab1/scratch.py is not generated from solutions/")


@pytest.mark.parametrize("rel", ["lab1/hidden.toml", "lab1/sub/data.npz"])
def test_check_reports_instructor_only_files_in_labs(written: Path, rel: str) -> None:
    (written / "labs" / rel).write_bytes((written / "solutions" / rel).read_bytes())
    [problem] = problems_of(written)
    assert problem.startswith(f"labs/{rel} is instructor-only (solutions/{rel};")


def test_check_reports_a_solution_line_pasted_into_another_file(written: Path) -> None:
    handout = written / "labs" / "lab2" / "notes.md"
    handout.write_text("Lab 2 handout\n    return   x @ self.weight + self.bias   # spoiler\n")
    problems = problems_of(written)
    assert (
        "leak: labs/lab2/notes.md:2 contains solution code from solutions/lab1/layers.py:12 "
        "(Linear.forward): return   x @ self.weight + self.bias   # spoiler"
    ) in problems
    assert len(problems) == 2  # the leak, and the handout no longer matching its source
    assert any(p.startswith("labs/lab2/notes.md differs") for p in problems)


def test_provided_code_shared_with_a_region_is_not_a_leak(written: Path) -> None:
    # SCALE = ... is inside the region *and* provided at module level, so the stub keeps it.
    assert "SCALE = np.float64(1.0)" in (written / "labs" / "lab1" / "layers.py").read_text()
    extra = written / "labs" / "lab1" / "README.md"
    extra.write_text(README + "SCALE = np.float64(1.0)\nself._x = x\n")  # shared, and too short
    problems = problems_of(written)
    assert len(problems) == 1 and problems[0].startswith("labs/lab1/README.md differs"), problems


def test_check_reports_a_malformed_solution_instead_of_crashing(written: Path) -> None:
    bad = written / "solutions" / "lab1" / "sub" / "util.py"
    bad.write_text("".join(line for line in HELPER.splitlines(True) if "END SOLUTION" not in line))
    problems = problems_of(written)
    assert problems == ["solutions/lab1/sub/util.py:3: BEGIN SOLUTION without a matching END SOLUTION"]


# --------------------------------------------------------------------------- run (the CLI)


def test_run_check_only_on_a_clean_release(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(written, check_only=True) == 0
    out = capsys.readouterr().out
    assert "labs/ is up to date with solutions/ (4 files, 2 solution regions, no leaks)" in out


def test_run_check_only_reports_problems(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (written / "labs" / "lab2" / "notes.md").unlink()
    assert run(written, check_only=True) == 1
    out = capsys.readouterr().out
    assert "labs/lab2/notes.md is missing" in out
    assert "1 problem(s)" in out


def test_run_writes_and_then_is_clean(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(project, check_only=False) == 0
    out = capsys.readouterr().out
    assert "wrote labs/lab1/layers.py" in out
    assert run(project, check_only=True) == 0


def test_run_does_not_write_anything_for_a_malformed_solution(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "solutions" / "lab2" / "bad.py").write_text("def f():\n    ### END SOLUTION\n")
    assert run(project, check_only=False) == 1
    assert "solutions/lab2/bad.py:2:" in capsys.readouterr().err
    assert not (project / "labs").exists()


def test_run_without_solutions_is_a_student_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "labs").mkdir()
    assert run(tmp_path, check_only=True) == 2
    assert "no solutions/ folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- the real repository


# --------------------------------------------------------------------------- provided code

LAB2 = src('''
    from .lab1.layers import Linear


    def double(x):
        """2 x."""
        ### BEGIN SOLUTION
        return Linear().forward(x) * 2.0
        ### END SOLUTION
    ''')


@pytest.fixture
def providing(project: Path) -> Path:
    """lab2 provides lab1, whose reference is then generated into solutions/lab2/lab1 and labs/lab2/lab1."""
    lab2 = project / "solutions" / "lab2"
    (lab2 / "lab.toml").write_text('provides = ["lab1"]\n')
    (lab2 / "ops.py").write_text(LAB2)
    write(project / "solutions", project / "labs")
    return project


def test_provided_lab_is_copied_complete_into_solutions_and_labs(providing: Path) -> None:
    copy = (providing / "solutions" / "lab2" / "lab1" / "layers.py").read_text()
    assert (providing / "labs" / "lab2" / "lab1" / "layers.py").read_text() == copy
    assert copy.startswith("# Generated by `gradelab stubs` from solutions/lab1/layers.py: Lab 1's reference")
    assert "return x @ self.weight + self.bias" in copy  # the solution is kept ...
    assert "BEGIN SOLUTION" not in copy and "END SOLUTION" not in copy  # ... without its markers
    assert (providing / "labs" / "lab2" / "lab1" / "sub" / "util.py").is_file()
    assert not (providing / "labs" / "lab2" / "lab1" / "README.md").exists()  # code only
    assert not (providing / "labs" / "lab2" / "lab1" / "hidden.toml").exists()
    assert not (providing / "labs" / "lab2" / "lab.toml").exists()  # instructor-only config
    # lab2's own task is still a stub, and lab1's own stubs are untouched
    stub = (providing / "labs" / "lab2" / "ops.py").read_text()
    assert 'raise NotImplementedError("double: not implemented yet")' in stub
    assert "return x @ self.weight" not in (providing / "labs" / "lab1" / "layers.py").read_text()
    assert problems_of(providing) == []


def test_provided_copy_drift_is_reported_in_solutions_and_labs(providing: Path) -> None:
    for base in ("solutions", "labs"):
        path = providing / base / "lab2" / "lab1" / "layers.py"
        path.write_text(path.read_text() + "# edited by hand\n")
    problems = problems_of(providing)
    assert any("solutions/lab2/lab1/layers.py is missing or differs" in p for p in problems), problems
    assert any("labs/lab2/lab1/layers.py differs from the provided copy" in p for p in problems), problems
    write(providing / "solutions", providing / "labs")
    assert problems_of(providing) == []


def test_reference_change_propagates_to_the_provided_copies(providing: Path) -> None:
    ref = providing / "solutions" / "lab1" / "layers.py"
    ref.write_text(ref.read_text().replace("return x @ self.weight + self.bias", "return x @ self.weight - self.bias"))
    assert any("lab2/lab1/layers.py" in p for p in problems_of(providing))
    write(providing / "solutions", providing / "labs")
    assert "return x @ self.weight - self.bias" in (providing / "labs" / "lab2" / "lab1" / "layers.py").read_text()
    assert problems_of(providing) == []


def test_provided_solution_lines_leak_anywhere_but_in_the_providing_lab(providing: Path) -> None:
    (providing / "labs" / "lab2" / "notes.md").write_text("return x @ self.weight + self.bias\n")
    assert not any(p.startswith("leak: labs/lab2/notes.md") for p in problems_of(providing))
    (providing / "labs" / "lab1" / "README.md").write_text(README + "return x @ self.weight + self.bias\n")
    assert any(p.startswith("leak: labs/lab1/README.md") for p in problems_of(providing))
    # lab2's own solution is still a leak in lab2
    (providing / "labs" / "lab2" / "notes.md").write_text("return Linear().forward(x) * 2.0\n")
    assert any(p.startswith("leak: labs/lab2/notes.md") for p in problems_of(providing))


def test_stale_files_in_a_provided_folder_are_reported_and_deleted(providing: Path) -> None:
    stray = providing / "solutions" / "lab2" / "lab1" / "old.py"
    stray.write_text("x = 1\n")
    assert any("solutions/lab2/lab1/old.py is not a provided copy" in p for p in problems_of(providing))
    write(providing / "solutions", providing / "labs")
    assert not stray.exists() and problems_of(providing) == []


@pytest.mark.parametrize(("config", "problem"), [
    ('provides = ["lab9"]\n', "provides 'lab9': no such other lab"),
    ('provides = ["lab2"]\n', "provides 'lab2': no such other lab"),
    ("provides = 'lab1'\n", "provides must be a list of lab names"),
    ("provides = [\n", "not valid TOML"),
])
def test_bad_lab_config_is_a_clear_problem(project: Path, config: str, problem: str) -> None:
    (project / "solutions" / "lab2" / "lab.toml").write_text(config)
    problems = problems_of(project)
    assert len(problems) == 1 and problem in problems[0], problems
    with pytest.raises(StubError, match=problem.split(":")[0].replace("[", r"\[")):
        generate(project / "solutions", project / "labs")


def test_labs_providing_each_other_in_a_cycle_are_refused(project: Path) -> None:
    (project / "solutions" / "lab2" / "lab.toml").write_text('provides = ["lab1"]\n')
    (project / "solutions" / "lab1" / "lab.toml").write_text('provides = ["lab2"]\n')
    with pytest.raises(StubError, match="cycle"):
        generate(project / "solutions", project / "labs")


def test_instructor_folder_is_never_released(project: Path) -> None:
    instructor = project / "solutions" / "lab1" / "instructor"
    instructor.mkdir()
    (instructor / "mistakes.py").write_text("def staged(x):\n    return x * 2.0  # the solution's math\n")
    (instructor / "notes.md").write_text("grading notes\n")
    assert not any(rel.parts[1] == "instructor" for rel in generate(project / "solutions", project / "labs"))
    write(project / "solutions", project / "labs")
    assert not (project / "labs" / "lab1" / "instructor").exists()
    (project / "labs" / "lab1" / "instructor").mkdir()
    (project / "labs" / "lab1" / "instructor" / "mistakes.py").write_text("x = 1\n")
    assert any("labs/lab1/instructor/mistakes.py is instructor-only" in p for p in problems_of(project))


def test_solution_lines_repeated_in_instructor_code_still_count_as_leaks(written: Path) -> None:
    instructor = written / "solutions" / "lab1" / "instructor"
    instructor.mkdir()
    (instructor / "mistakes.py").write_text("def predict(x):\n    return x @ self.weight + self.bias\n")
    (written / "labs" / "lab1" / "README.md").write_text(README + "return x @ self.weight + self.bias\n")
    assert any(p.startswith("leak: labs/lab1/README.md") for p in problems_of(written))


def test_repository_labs_match_solutions() -> None:
    if not paths.solutions_dir().is_dir():
        pytest.skip(
            "no solutions/ folder: this is a student release, whose labs/ is checked by the instructor"
        )
    assert check(paths.solutions_dir(), paths.labs_dir()) == []
