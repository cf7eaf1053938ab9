"""Dependencies point one way (cli → training → models → layers; featurizers → structures → data),
lazy imports inside functions included, and no module imports itself back through others."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent

PACKAGE = Path(__file__).resolve().parents[1] / "keras_chem"
# What each part of the package may import, besides itself and the small shared modules.
ALLOWED = {
    "__init__": {"inference", "models"},  # the lazy public entry points
    "cli": {"training", "models", "featurizers", "structures", "data", "inference", "export", "metrics"},
    "inference": {"export", "training", "models", "structures", "featurizers", "data"},
    "export": {"training", "models", "data"},
    "training": {"models", "featurizers", "structures", "data", "metrics"},
    "models": {"layers", "losses", "featurizers", "structures", "data"},
    "layers": set(),
    "losses": set(),
    "metrics": set(),
    "featurizers": {"structures", "data"},
    "structures": {"data"},
    "data": set(),
}
SHARED = {"io", "locks", "cross_replica"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_chem"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("keras_chem"))
    return names


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_parts_import_only_what_lies_below_them():
    wrong = []
    for module, path in _modules().items():
        part = _part(module)
        for name in _imports(path):
            target = _part(name)
            if target == "__init__" and part != "__init__":
                continue  # `import keras_chem` (its version) is cheap and imports nothing
            if target != part and target not in SHARED and target not in ALLOWED.get(part, set()):
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    modules = _modules()
    graph = {m: {n for n in _imports(p) if n in modules and n != m} for m, p in modules.items()}
    for m in graph:  # importing a.b.c runs a.b's __init__, which is not a dependency edge of a.b.c
        graph[m] = {n for n in graph[m] if not m.startswith(n + ".")}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(cycles)
