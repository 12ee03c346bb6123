"""The engine's import graph: no cycles, and nothing of the dashboard.

The graph is read from the source with `ast` (nothing is imported). It counts imports at
module level and inside functions alike (a lazy import that closes a cycle is still a
cycle: the two modules cannot be understood or changed apart), and leaves out imports
under `if TYPE_CHECKING:`, which never run. Importing `a.b.c` also runs the packages
`a.b` and `a` (their `__init__`), so it adds edges to those too, except to the
importer's own packages, which are already being imported when it runs.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Cycles and upward imports tolerated for now, each with the fix that removes it (none
#: left). The lists may only shrink: one not listed fails, and so does a listed one that is
#: gone (delete its line then).
KNOWN_CYCLES: dict[frozenset[str], str] = {}
KNOWN_UPWARD: dict[str, str] = {}


def module_names(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of every module of `package` under `root`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


class _Imports(ast.NodeVisitor):
    """(target, line, inside a function) of each import statement that can run."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, node.lineno, self.depth > 0) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        # `from a import b` runs the module a.b when there is one, else it reads a name of a:
        # `import_graph` resolves "a.b" to the longest module name it starts with.
        self.found += [(f"{base}.{alias.name}", node.lineno, self.depth > 0) for alias in node.names]


def import_graph(root: Path, package: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """(edges {importer: {imported: "file:line"}} among `package`'s modules, and the
    places where one of them imports `dashboard`)."""
    modules = module_names(root, package)
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    upward: list[str] = []
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target, line, lazy in visitor.found:
            where = f"{path.relative_to(root)}:{line}{' (in a function)' if lazy else ''}"
            if target == "dashboard" or target.startswith("dashboard."):
                upward.append(f"{where} imports {target}")
                continue
            parts = target.split(".")
            hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None)
            if hit is None:
                continue  # the standard library or a third-party package
            # The module itself (unless it is the importer) and every package above it
            # that is not one of the importer's own (those are already initialising).
            hit_parts = hit.split(".")
            ran = [hit] + [".".join(hit_parts[:i]) for i in range(1, len(hit_parts))]
            for module in ran:
                if module != name and (module == hit or module not in own_packages):
                    edges[name].setdefault(module, where)
    return edges, upward


def strongly_connected(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each a cycle or
    several cycles sharing modules), largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth ≤ number of modules (~60)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def one_cycle(edges: dict[str, dict[str, str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, each step with its import line."""
    start, members = component[0], set(component)
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in edges.get(v, {}):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    path.reverse()
                    return [f"{a} -> {b}  [{edges[a][b]}]" for a, b in zip(path, path[1:] + [start])]
                if w not in came:
                    came[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def describe(edges: dict[str, dict[str, str]], components: list[list[str]]) -> str:
    return "\n".join(
        f"{len(c)} modules: {', '.join(c)}\n  e.g. " + "\n       ".join(one_cycle(edges, c)) for c in components
    )


# ---- the specification ------------------------------------------------------------------------
def test_mtl_core_has_no_import_cycles():
    edges, _ = import_graph(ROOT, "mtl_core")
    components = strongly_connected(edges)
    new = [c for c in components if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "import cycles in mtl_core (break each by moving what both sides need into a module " \
                    "that imports neither):\n" + describe(edges, new)
    gone = [sorted(k) for k in KNOWN_CYCLES if sorted(k) not in components]
    assert not gone, f"these known cycles are gone; delete them from KNOWN_CYCLES: {gone}"


def test_mtl_core_never_imports_the_dashboard():
    _, upward = import_graph(ROOT, "mtl_core")
    new = [u for u in upward if u not in KNOWN_UPWARD]
    assert not new, "mtl_core must not import dashboard (the engine knows nothing of Streamlit):\n" + "\n".join(new)
    gone = [u for u in KNOWN_UPWARD if u not in upward]
    assert not gone, f"these known upward imports are gone; delete them from KNOWN_UPWARD: {gone}"


def test_the_model_spec_and_the_registries_need_no_config():
    """The modules `config` reads its registries from never import `config` (issue 13, item 3)."""
    edges, _ = import_graph(ROOT, "mtl_core")
    reach: set[str] = set()
    todo = ["mtl_core.models", "mtl_core.weighting", "mtl_core.tasks", "mtl_core.spec"]
    while todo:
        m = todo.pop()
        if m not in reach:
            reach.add(m)
            todo += list(edges.get(m, {}))
    assert "mtl_core.config" not in reach
    assert edges["mtl_core.spec"] == {}  # the shared shapes import nothing of MTL Lab


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_finds_a_lazy_cycle_through_a_package_init(tmp_path):
    # config imports models lazily; models/__init__ imports models.sharing, which imports
    # config at the top: the shape of issue 13's 17-file cycle.
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/config.py": "def check():\n    from pkg.models import REGISTRY\n",
        "pkg/models/__init__.py": "from pkg.models.sharing import REGISTRY\n",
        "pkg/models/sharing.py": "from pkg.config import check\nfrom pkg.models.heads import Head\nREGISTRY = {}\n",
        "pkg/models/heads.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import config\n",
        "pkg/view.py": "import dashboard.app\n",
    })
    edges, upward = import_graph(tmp_path, "pkg")
    assert strongly_connected(edges) == [["pkg.config", "pkg.models", "pkg.models.sharing"]]
    # A sibling import inside the package does not count as importing its own __init__ ...
    assert "pkg.models" not in edges["pkg.models.sharing"]
    # ... and neither does an import that only runs for type checkers.
    assert edges.get("pkg.models.heads", {}) == {}
    assert upward == ["pkg/view.py:1 imports dashboard.app"]
    assert one_cycle(edges, ["pkg.config", "pkg.models", "pkg.models.sharing"]) == [
        "pkg.config -> pkg.models  [pkg/config.py:2 (in a function)]",
        "pkg.models -> pkg.models.sharing  [pkg/models/__init__.py:1]",
        "pkg.models.sharing -> pkg.config  [pkg/models/sharing.py:1]",
    ]
