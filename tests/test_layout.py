"""The layout says what each part is (issue 16, point 1), and imports keep to it. Read from the source (no
import is run), so a violation names the file and the line:

- ``app/models``: tables; ``app/schemas``: the shapes of requests and answers, importing only models and
  the neutral modules (``app.config``, ``app.errors``); ``app/services``: what Minyi does, knowing nothing of
  HTTP; ``app/http``: the HTTP plumbing (dependencies, problems, abuse, headers, hosts, limits, polls,
  observability), knowing no router; ``app/api``: the JSON routers (``/api/v1``, Open311);
  ``app/web``: the page routers.
- No import cycle, counting the package ``__init__`` a module's import runs. The one package whose
  ``__init__`` imports its own modules is ``app.models`` (every table must be mapped before any is used);
  its modules import each other by module (``app.models.base``), never through the package.
"""

from __future__ import annotations

import ast
import itertools
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
ALLOWED_PACKAGE_LOOPS = {"app.models"}
# What each layer may import from the app (any other app module is a violation).
LAYERS = {
    "app.schemas": ("app.schemas", "app.models", "app.config", "app.errors"),
    "app.models": ("app.models", "app.config", "app.crypto", "app.errors"),
    "app.services": ("app.services", "app.schemas", "app.models", "app.config", "app.errors", "app.db",
                     "app.crypto", "app.migrate"),
    "app.http": ("app.http", "app.services", "app.schemas", "app.models", "app.config", "app.errors", "app.db",
                 "app.migrate", "app"),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str) -> list[tuple[str, int]]:
    """(app module imported, line) for every import in ``name``, at any depth (functions too), but not
    those under ``if TYPE_CHECKING:``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in MODULES else base, node.lineno))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return [(target, line) for imported, line in found if (target := resolve(imported)) and target != name]


def graph() -> dict[str, set[str]]:
    """Who imports whom, with the package ``__init__`` each import runs first (``app.web.session`` runs
    ``app.web``), except a module's own enclosing packages, which already run before it."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _line in imports(name):
            edges[name].add(target)
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in MODULES and not name.startswith(parent + ".") and parent != name:
                    edges[name].add(parent)
            # A module's own package runs before it only if the package is not loading it from its __init__.
            own = name.rpartition(".")[0]
            if own in MODULES and target.startswith(own + ".") and target != own:
                edges[name].add(own)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = itertools.count()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def strong(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_the_layers_are_where_the_layout_says() -> None:
    for package in ("app.models", "app.schemas", "app.services", "app.http", "app.api", "app.web"):
        assert package in MODULES, f"{package} is missing"
    assert not [m for m in MODULES if m.startswith("app.api.pages")], "page routers live in app.web"


def may(target: str, allowed: str) -> bool:
    """``allowed`` names a module or a package; ``app`` itself (its ``__version__``) is only ``app``."""
    return target == allowed or (allowed != "app" and target.startswith(allowed + "."))


def test_each_layer_imports_only_what_it_may() -> None:
    wrong = []
    for name in sorted(MODULES):
        layer = next((layer for layer in LAYERS if name == layer or name.startswith(layer + ".")), None)
        if layer is None:
            continue
        for target, line in imports(name):
            if not any(may(target, allowed) for allowed in LAYERS[layer]):
                wrong.append(f"{MODULES[name].relative_to(APP.parent)}:{line} imports {target}")
    assert not wrong, "imports across the layout:\n" + "\n".join(wrong)


def test_no_import_cycle_not_even_through_a_package_init() -> None:
    found = [c for c in cycles(graph()) if not (set(c) <= {m for m in MODULES if m.split(".")[:2] == ["app", "models"]}
                                               and "app.models" in c)]
    assert not found, "import cycles:\n" + "\n".join(" → ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above cannot pass by finding nothing at all."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    models = [c for c in cycles(graph()) if "app.models" in c]
    assert models, "app.models' re-exporting __init__ should show as the one allowed package loop"


# Pages take the request's session (``SessionDep``, as the JSON routers do) instead of opening their own.
# The exceptions, each for a reason: the login cache resolves a cookie once for many concurrent requests
# (session.py), and an import runs in the background after the request has ended (imports.py hands the
# runner the sessionmaker).
OWN_SESSIONS_ALLOWED = {"app/web/session.py": 1, "app/web/imports.py": 1}


def test_pages_use_the_requests_session() -> None:
    found = {}
    for path in sorted((APP / "web").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        count = text.count("sessionmaker") + text.count("transaction(")
        if count:
            found[str(path.relative_to(APP.parent))] = count
    assert found == OWN_SESSIONS_ALLOWED, found


def test_pages_run_no_query_of_their_own() -> None:
    """Queries live in services; a page module does not even import SQLAlchemy's query builders."""
    wrong = [f"{path.relative_to(APP.parent)}:{node.lineno}"
             for path in sorted((APP / "web").glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.ImportFrom) and node.module in ("sqlalchemy", "sqlalchemy.orm")]
    assert not wrong, wrong
