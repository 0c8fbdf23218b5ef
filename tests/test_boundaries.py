"""The tree's boundaries: plugins (backends and sinks) reach the core through the plugin API alone,
no module imports itself back through others (an import circle), and the upstream client's
modules use only each other's public names."""

from __future__ import annotations

import ast
import string
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.upstream

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_API = "gateway.plugin_api"
# What plugins are made of: every plugin distribution (backends and sinks) and its tests, and the
# test backend.
PLUGIN_FILES = sorted(
    [
        *ROOT.glob("plugins/*/gateway_*/**/*.py"),
        *ROOT.glob("plugins/*/tests/**/*.py"),
        ROOT / "tests" / "acme_backend.py",
        ROOT / "tests" / "acme_values.py",
    ]
)


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module `path` imports, at any depth (inside functions and TYPE_CHECKING too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno
            # `from gateway import wire` imports the module gateway.wire.
            yield from ((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_the_core_only_through_the_plugin_api(path: Path) -> None:
    """A backend (or its tests) that reached past `gateway.plugin_api` would break with any
    refactoring of the core; the API module's `__all__` is the whole contract."""
    wrong = [
        f"line {line}: {name}"
        for name, line in imported(path)
        if (name == "gateway" or name.startswith("gateway."))
        and not (name == PLUGIN_API or name.startswith(PLUGIN_API + "."))
    ]
    assert not wrong, wrong


def hand_built(tree: ast.AST) -> Iterator[int]:
    """The lines where a `Reply` or an event is given a dict (a literal or a comprehension) for
    its body or data."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        given = node.args[1] if len(node.args) > 1 else None
        if name in ("Reply", "emit") and isinstance(given, ast.Dict | ast.DictComp):
            yield node.lineno


def backend_sources() -> Iterator[tuple[str, str]]:
    """Every plugin file, and the new-backend template's modules as `new-backend demo` writes
    them."""
    for path in PLUGIN_FILES:
        yield str(path.relative_to(ROOT)), path.read_text()
    templates = ROOT / "gateway" / "templates" / "backend" / "package"
    for template in sorted(templates.glob("*.py.tmpl")):
        text = string.Template(template.read_text()).substitute(name="demo", Camel="Demo")
        yield str(template.relative_to(ROOT)), text


@pytest.mark.parametrize(
    ("name", "source"), [pytest.param(*found, id=found[0]) for found in backend_sources()]
)
def test_backends_answer_values_not_hand_built_dicts(name: str, source: str) -> None:
    """Replies and events are attrs values the core's one converter writes (in camelCase, as the
    contract names them), never dicts a backend spells out by hand."""
    assert not list(hand_built(ast.parse(source, name))), name


PLUGIN_GROUPS = ("gateway.backends", "gateway.sinks")


@pytest.mark.parametrize(
    "pyproject", sorted(ROOT.glob("plugins/*/pyproject.toml")), ids=lambda p: p.parent.name
)
def test_every_plugin_entry_point_is_held_to_the_plugin_api(pyproject: Path) -> None:
    """Each distribution's backends and sinks are in a `gateway_*` package of its own folder, so
    the test above reads every file of them: a sink is held to the plugin API as a backend is."""
    entry_points = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    modules = [m for group in PLUGIN_GROUPS for m in entry_points.get(group, {}).values()]
    assert modules, f"{pyproject} registers no backend and no sink"
    for module in modules:
        package = module.split(".")[0]
        assert package.startswith("gateway_"), module
        assert (pyproject.parent / package / "__init__.py") in PLUGIN_FILES, module


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p, ROOT): p for p in ROOT.glob("gateway/**/*.py")}
    for plugin in ROOT.glob("plugins/*"):
        files.update({_module_name(p, plugin): p for p in plugin.glob("gateway_*/**/*.py")})
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module] = {name for name, _ in imported(path) if name in files and name != module}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_circles() -> None:
    """No module of the core or of a plugin imports itself back through others, at any depth
    (deferred imports inside functions and TYPE_CHECKING blocks count too): each layer stands on
    the ones below it."""
    circle = _circle(_graph())
    assert circle is None, " -> ".join(circle or [])


def test_upstream_modules_use_only_each_others_public_names() -> None:
    """Issue 14: no module of the package imports another's private names or reaches into an
    object's private attributes other than its own (`self._x`)."""
    package = Path(gateway.upstream.__file__).parent
    trespass = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if a.name.startswith("_")]
                names = [n for n in names if not n.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                own = isinstance(node.value, ast.Name) and node.value.id == "self"
                names = [] if own or node.attr.startswith("__") else [node.attr]
            else:
                continue
            trespass += [f"{path.name}:{node.lineno}: {name}" for name in names]
    assert trespass == []
