"""The house's shape (issue 16), read from the code's own imports: no import circles anywhere in the
project's code, services in floors that only import downwards, no Dash in services, no torch in
components, and one import name (nothing imports ``services``, ``components`` or ``callbacks`` as
top-level packages)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"services": "services", "components": "components", "callbacks": "callbacks",
            "": "src/attention_explorer"}
ROOT = "attention_explorer"

# The floors of the services, bottom first: a module may import its own floor and the floors below.
FLOORS = [
    ("bottom", ("errors", "config", "validation", "serial", "ondemand", "result")),
    ("model", ("model",)),
    ("store", ("store",)),
    ("analyses", ("analyses",)),
    ("api", ("extraction", "inside", "__init__")),
    ("web", ("web",)),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            name = ".".join([ROOT] + ([package] if package else []) + parts)
            found[name] = path
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules ``module`` imports (a ``from package import name`` of a submodule counts as
    importing the submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("services", "components", "callbacks", "app"):
                    out.add("TOP-LEVEL:" + alias.name)
                elif alias.name.startswith(ROOT):
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path).split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
                if target.split(".")[0] in ("services", "components", "callbacks", "app"):
                    out.add("TOP-LEVEL:" + target)
                    continue
            if not target.startswith(ROOT):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m.startswith("TOP-LEVEL:") or m in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_one_import_name(graph):
    top = sorted(f"{m} imports {i[10:]}" for m, imports in graph.items() for i in imports if i.startswith("TOP-LEVEL:"))
    assert not top, f"imports of a top-level folder instead of attention_explorer.*: {top}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    # a package's __init__ re-exporting its own submodules is not a circle of code: leave those edges out
    return out


def test_no_import_circles(graph):
    # A package's __init__ may name its submodules (re-exports); the submodules never import it back.
    plain = {m: {i for i in imports if not (m.endswith("__init__") or m == i.rsplit(".", 1)[0])}
             for m, imports in graph.items()}
    assert _cycles(plain) == []


def _floor(module: str) -> int | None:
    prefix = f"{ROOT}.services."
    if module == f"{ROOT}.services":
        return [name for name, _ in FLOORS].index("api")
    if not module.startswith(prefix):
        return None
    first = module[len(prefix):].split(".")[0]
    for number, (_name, parts) in enumerate(FLOORS):
        if first in parts:
            return number
    raise AssertionError(f"{module} is on no floor of the services: add it to FLOORS")


def test_services_import_downwards_only(graph):
    upward = []
    for module, imports in graph.items():
        floor = _floor(module)
        if floor is None:
            continue
        for target in imports:
            other = _floor(target)
            if other is None and not target.startswith("TOP-LEVEL:"):
                upward.append(f"{module} -> {target} (outside the services)")
            elif other is not None and other > floor:
                upward.append(f"{module} ({FLOORS[floor][0]}) -> {target} ({FLOORS[other][0]})")
    assert not upward, upward


def _third_party(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_services_never_import_dash_and_components_never_torch():
    modules = _modules()
    dash_in_services = [str(p.relative_to(REPO)) for m, p in modules.items()
                        if m.startswith(f"{ROOT}.services") and _third_party(p) & {"dash", "dash_bootstrap_components"}]
    torch_in_components = [str(p.relative_to(REPO)) for m, p in modules.items()
                           if m.startswith(f"{ROOT}.components") and _third_party(p) & {"torch", "transformers"}]
    components_to_callbacks = [m for m, p in modules.items() if m.startswith(f"{ROOT}.components")
                               and any(i.startswith(f"{ROOT}.callbacks") for i in _imports(m, p, set(modules)))]
    assert dash_in_services == [] and torch_in_components == [] and components_to_callbacks == []


def test_the_checks_can_fail():
    """The circle finder finds a circle, and the floor check sees an upward import."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _floor(f"{ROOT}.services.result") < _floor(f"{ROOT}.services.store.cache") < _floor(f"{ROOT}.services.web.health")
