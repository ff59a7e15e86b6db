"""The import graph of the project's packages, read from the source (every `import` statement, at the top of a module
or inside a function alike): no cycles, imports only point down the floors (contracts 0 < backbones 1 <
distill_pretrain 2 < transfer 3 < benchmarks 4), no private name (`_x`) of one module imported or used by another,
and tests import nothing from a floor above the package they mirror (tests/<package>/...). The checker itself is
tested on a small tree that breaks every rule."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"contracts": 0, "backbones": 1, "distill_pretrain": 2, "transfer": 3, "benchmarks": 4}


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclass
class Graph:
    """Modules of `floors`' packages under `root` (dotted name → file) and what each imports from the others."""

    root: Path
    floors: dict[str, int]
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)  # module → project modules it imports
    private_uses: list[str] = field(default_factory=list)  # "file:line: what" of private names used across modules

    @classmethod
    def read(cls, root: Path, floors: dict[str, int], extra: tuple[str, ...] = ()) -> "Graph":
        """The graph of the packages, plus the import statements of the files under `extra` folders (tests)."""
        graph = cls(root, floors)
        for package in floors:
            for path in sorted((root / package).rglob("*.py")):
                graph.modules[module_name(path.relative_to(root))] = path
        for folder in extra:
            for path in sorted((root / folder).rglob("*.py")):
                graph.modules.setdefault(module_name(path.relative_to(root)), path)
        for name, path in graph.modules.items():
            graph.edges[name] = graph._imports(name, path)
        return graph

    def floor(self, module: str) -> int | None:
        return self.floors.get(module.split(".")[0])

    def _imports(self, name: str, path: Path) -> set[str]:
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        bound: dict[str, str] = {}  # local name → project module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if self._project(alias.name):
                        targets.add(self._existing(alias.name))
                        local = alias.asname or alias.name.split(".")[0]  # `import a.b` binds `a`
                        bound[local] = alias.name if alias.asname else local
                        self._check_private(path, node, alias.name.split("."), alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, is_package, node.module, node.level)
                if not self._project(base):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in self.modules:
                        targets.add(sub)
                        bound[alias.asname or alias.name] = sub
                    else:
                        targets.add(self._existing(base))
                    self._check_private(path, node, [alias.name], f"{base}.{alias.name}")
        for node in ast.walk(tree):  # `module._name` on a module bound by an import
            if isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name) \
                    and node.value.id in bound and bound[node.value.id] != name:
                self.private_uses.append(f"{path.relative_to(self.root)}:{node.lineno}: "
                                         f"{bound[node.value.id]}.{node.attr}")
        # a module reaching its own package's __init__ only finds its siblings there (Python runs it first)
        return {t for t in targets if t != name and not name.startswith(t + ".")}

    def _project(self, module: str) -> bool:
        return module.split(".")[0] in self.floors

    def _existing(self, module: str) -> str:
        """The longest prefix of a dotted name that is a module of the graph (`a.b.func` → `a.b`)."""
        parts = module.split(".")
        while len(parts) > 1 and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts)

    def _check_private(self, path: Path, node: ast.stmt, names: list[str], what: str) -> None:
        if any(private(n) for n in names):
            self.private_uses.append(f"{path.relative_to(self.root)}:{node.lineno}: {what}")

    def cycles(self) -> list[list[str]]:
        """The strongly connected components with more than one module (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for start in sorted(self.edges):
            if start in index:
                continue
            work = [(start, iter(sorted(self.edges[start])))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None and child in self.edges:
                    if child not in index:
                        index[child] = low[child] = len(index)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                if child is not None:
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return sorted(found)

    def upward(self, tests: bool = False) -> list[str]:
        """Imports that run up a floor: by a package's module, or (tests=True) by a test of tests/<package>/."""
        bad = []
        for module, targets in sorted(self.edges.items()):
            parts = module.split(".")
            if tests != (parts[0] == "tests"):
                continue
            if tests:  # tests/<package>/... mirrors <package>; tests/*.py and tests/configs/ mirror none
                own = self.floors.get(parts[1]) if len(parts) > 2 else None
            else:
                own = self.floor(module)
            if own is None:
                continue
            bad += [f"{module} (floor {own}) imports {t} (floor {self.floor(t)})"
                    for t in sorted(targets) if (self.floor(t) or 0) > own]
        return bad


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, target: str | None, level: int) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if not level:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph.read(REPO, FLOORS, extra=("tests",))


def test_no_import_cycles(graph):
    cycles = graph.cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_point_down_the_floors(graph):
    upward = graph.upward()
    assert not upward, "imports up a floor:\n" + "\n".join(upward)


def test_no_private_names_across_modules(graph):
    assert not graph.private_uses, "private names used across modules:\n" + "\n".join(graph.private_uses)


def test_tests_import_nothing_above_the_package_they_mirror(graph):
    upward = graph.upward(tests=True)
    assert not upward, "tests importing above their package's floor:\n" + "\n".join(upward)


def test_the_checker_finds_every_kind_of_break(tmp_path):
    files = {
        "low/__init__.py": "from .a import public\n",
        "low/a.py": "def public():\n    from low.b import _helper\n    return _helper\n",
        "low/b.py": "import low.a as a\n\n\ndef _helper():\n    return a._secret\n",
        "high/__init__.py": "",
        "high/c.py": "from low import public\n",
        "low/d.py": "from ..high import c\n",  # relative import beyond the package: resolves to 'high'
        "low/e.py": "def late():\n    import high.c\n",
        "tests/low/test_a.py": "from high.c import public\n",
        "tests/high/test_c.py": "from low.a import public\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    seen = Graph.read(tmp_path, {"low": 0, "high": 1}, extra=("tests",))
    assert seen.cycles() == [["low.a", "low.b"]]
    assert seen.upward() == ["low.d (floor 0) imports high.c (floor 1)", "low.e (floor 0) imports high.c (floor 1)"]
    assert seen.private_uses == ["low/a.py:2: low.b._helper", "low/b.py:5: low.a._secret"]
    assert seen.upward(tests=True) == ["tests.low.test_a (floor 0) imports high.c (floor 1)"]
