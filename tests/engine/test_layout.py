"""The engine's layers: every import points down (or sideways within a layer), and no module imports itself
back through others. The layers, lowest first, are those of the README's architecture section."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "grader"

# Lowest first. A module may import its own layer and any lower one.
LAYERS: list[tuple[str, ...]] = [
    ("grader", "grader.paths", "grader.text"),
    ("grader.data",),
    ("grader.judging",),
    ("grader.isolation",),
    ("grader.runner",),
    ("grader.authoring",),
    ("grader.course",),
    ("grader.cli", "grader.course_cli", "grader.pytest_support"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for f in sorted(ENGINE.rglob("*.py")):
        rel = f.relative_to(ENGINE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = f
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best = -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (p != "grader" and module.startswith(p + ".")):
                best = i
    assert best >= 0, f"{module} belongs to no layer: add it to LAYERS and to the README"
    return best


def _imports(module: str, path: Path) -> set[str]:
    """Engine modules that ``module`` imports anywhere in its body (function-level imports count)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not (target == "grader" or target.startswith("grader.")):
                continue
            for alias in node.names:  # "from grader.judging import case" imports grader.judging.case
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("grader.")}
    return {m for m in out if m in MODULES and m != module}


def test_every_engine_module_has_a_layer_and_opens_with_its_purpose() -> None:
    for module, path in MODULES.items():
        _layer(module)
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc) > 40, f"{path.relative_to(ENGINE.parent)} does not open with its purpose"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    mine = _layer(module)
    upward = sorted(m for m in _imports(module, MODULES[module]) if _layer(m) > mine)
    assert not upward, f"{module} (layer {LAYERS[mine][0]}) imports a higher layer: {upward}"


def test_no_import_cycle() -> None:
    graph = {m: _imports(m, p) for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n] if n in stack else [m, n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The layer rule is not vacuous: a judging module importing the course layer is caught."""
    bad = tmp_path / "grader" / "judging" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text('"""x."""\nfrom grader.course import gradebook\nfrom ..runner import grade\n')
    MODULES["grader.judging.bad"] = bad
    try:
        found = _imports("grader.judging.bad", bad)
        assert found == {"grader.course.gradebook", "grader.runner"}
        assert all(_layer(m) > _layer("grader.judging.bad") for m in found)
    finally:
        del MODULES["grader.judging.bad"]


def test_cli_holds_no_grading_logic() -> None:
    """The CLI parses arguments and prints; batch grading lives in the course layer."""
    cli = (ENGINE / "cli.py").read_text()
    assert len(cli.splitlines()) < 260, "grader/cli.py grew past ~250 lines: move logic into a layer"
    for name in ("Gradebook(", "book.put(", "submission_ids(", "content_hash("):
        assert name not in cli, f"grader/cli.py calls {name}: that belongs in grader/course/"
