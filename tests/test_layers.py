"""The imports of segvit run one way: no circle, and no import from a lower layer to a higher one.

Read from the source (ast), every import counts: module level, inside functions (lazy ones)
and under TYPE_CHECKING. docs/architecture.md states the same order.
"""

import ast
from pathlib import Path

import pytest

import segvit

PACKAGE = Path(segvit.__file__).parent

# Bottom to top; a module may import its own layer's modules and any below. A new top-level
# module or package of segvit goes into one of these (the test names it otherwise).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("segvit", "errors", "fileio", "schema", "collective"),  # plain helpers
    ("modeling", "data", "losses", "criteria", "metrics"),  # the parts, knowing no run
    ("inference",),  # test-time scoring of one photo
    ("engine",),  # training, evaluation, prediction, checkpoints
    ("analysis", "bench", "export"),  # FLOPs, the QU probe; benchmarks; ONNX and folders
    ("experiments",),  # runs, sweeps, tables, figures
    ("api",),  # segvit.load and the model it returns: what a user's Python calls
    ("cli",),  # parses and prints
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_names() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The segvit modules `name` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import module` imports the module; `from module import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    if top not in LAYER:
        pytest.fail(f"{module}: segvit.{top} is in no layer; add it to LAYERS in {__file__}")
    return LAYER[top]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_no_import_runs_upward(graph):
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph.items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module) and module != "segvit"
    ]
    # `segvit` itself is the facade: `segvit.load` reaches the api layer lazily (on first
    # use), and modules below may import the package for its path; nothing else is exempt.
    assert not upward, "\n".join(upward)


def test_no_import_circle(graph):
    assert find_circle(graph) is None, " -> ".join(find_circle(graph) or ())


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def test_the_checks_see_what_they_look_for(tmp_path):
    """The reader finds lazy and relative imports, and the two checks fail when they should."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from .b import thing\n")
    (tmp_path / "pkg" / "b.py").write_text("import pkg.a\nthing = 1\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.a": tmp_path / "pkg" / "a.py",
               "pkg.b": tmp_path / "pkg" / "b.py"}  # fmt: skip
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_circle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_circle({"x": {"y"}, "y": set()}) is None
    assert layer_of("segvit.cli.data_cmds") > layer_of("segvit.data.prepare")
    assert layer_of("segvit.inference") < layer_of("segvit.engine.evaluate")
