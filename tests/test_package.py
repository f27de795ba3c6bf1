"""The package's shape, read from its source with ast: the arc_trm.* import graph runs one way (no cycle,
function-level imports included), and no class grows past MAX_CLASS_LINES."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "arc_trm"
MAX_CLASS_LINES = 150  # a class's lines from `class` to its last line, docstring and comments included


def package_modules(package: Path) -> dict[str, Path]:
    """Module name -> file of every module of `package` (a folder), subpackages included."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = package_modules(PACKAGE)


def imports(name: str, modules: dict[str, Path]) -> list[tuple[str, int, str]]:
    """(imported module, line, source line) for every import statement of module `name` at any depth (in
    functions too) that imports one of `modules`: `from arc_trm import x` names the submodule x when there
    is one, else the package itself."""
    path = modules[name]
    source = path.read_text()
    lines = source.splitlines()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from this package, or level - 1 packages up
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import arc_trm.x.y` where y is not a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno, lines[node.lineno - 1].strip()))
    return found


def find_cycle(graph: dict[str, list[tuple[str, int, str]]]) -> list[tuple[str, int, str, str]] | None:
    """A cycle as [(module, line, import line, imported module), ...], or None."""
    state: dict[str, str] = {}  # module -> "open" (on the current path) or "done"
    path: list[tuple[str, int, str, str]] = []

    def visit(module: str) -> list | None:
        state[module] = "open"
        for target, line, text in graph[module]:
            path.append((module, line, text, target))
            if state.get(target) == "open":
                start = next(i for i, step in enumerate(path) if step[0] == target)
                return path[start:]
            if target not in state and (cycle := visit(target)):
                return cycle
            path.pop()
        state[module] = "done"
        return None

    for module in graph:
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = {name: imports(name, MODULES) for name in MODULES}
    assert sum(len(edges) for edges in graph.values()) > len(MODULES)  # the graph was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle:\n" + "\n".join(
        f"  {module} line {line}: {text}   (-> {target})" for module, line, text, target in cycle)


def test_the_cycle_finder_finds_one():
    graph = {"a": [("b", 1, "import b")], "b": [("c", 2, "import c")], "c": [("b", 3, "import b")], "d": []}
    assert find_cycle(graph) == [("b", 2, "import c", "c"), ("c", 3, "import b", "b")]
    assert find_cycle({"a": [("b", 1, "")], "b": []}) is None


def test_function_level_and_relative_imports_are_read(tmp_path):
    pkg = tmp_path / "arc_trm"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from arc_trm import b\n")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from .b import g\n    import arc_trm.b.x\n")
    (pkg / "b.py").write_text("from arc_trm import VERSION\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import json\nfrom ..a import f\nfrom . import d\n")
    modules = package_modules(pkg)
    assert set(modules) == {"arc_trm", "arc_trm.a", "arc_trm.b", "arc_trm.sub", "arc_trm.sub.c"}
    assert [t for t, _, _ in imports("arc_trm.a", modules)] == ["arc_trm.b"] * 3
    assert imports("arc_trm.b", modules) == [("arc_trm", 1, "from arc_trm import VERSION")]
    assert imports("arc_trm", modules) == [("arc_trm.b", 1, "from arc_trm import b")]
    assert [t for t, _, _ in imports("arc_trm.sub.c", modules)] == ["arc_trm.a", "arc_trm.sub"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_class_is_over_the_size_limit(name):
    tree = ast.parse(MODULES[name].read_text())
    sizes = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    over = {c: n for c, n in sizes.items() if n > MAX_CLASS_LINES}
    assert over == {}, f"{name}: classes over {MAX_CLASS_LINES} lines"
