"""`gateway new-backend NAME`: a backend plugin of the standard shape, ready to grow.

It writes `plugins/NAME/` from the templates shipped in the package (`gateway/templates/backend`,
`string.Template` files): the distribution `gateway-NAME` with its entry point, the package
`gateway_NAME` (config, backend, plugin hooks, an OpenAPI fragment with one operation of its own,
a sandbox simulator on the plugin API's sandbox kit), tests on the plugin API's test kit, and a
README. What it writes installs, passes its own tests and the repository's lint, and is served by
the gateway once installed, its own operation in the served contract (tests/test_new_backend.py
and .ci/new-backend do all of that on a generated plugin).
"""

from __future__ import annotations

import re
import string
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Final

import yaml

from gateway.contract import ContractError
from gateway.fragments import merged_contract
from gateway.plugins import PluginHost

NAME_RULE: Final = re.compile(r"[a-z][a-z0-9_]{1,30}")
TEMPLATES: Final = "templates/backend"
SUFFIX: Final = ".tmpl"
FRAGMENT: Final = ("package", "openapi.yaml")


class ScaffoldError(Exception):
    """The plugin cannot be made as asked; nothing was written."""


def class_prefix(name: str) -> str:
    """The name in CamelCase, for class names: `shop_api` gives `ShopApi`."""
    return "".join(part.capitalize() for part in name.split("_"))


Template = tuple[tuple[str, ...], str]  # path parts below the templates' folder, and the text


def _templates(folder: Traversable, under: tuple[str, ...] = ()) -> list[Template]:
    """Every template below `folder`, in a stable order."""
    found: list[Template] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _templates(entry, (*under, entry.name))
        elif entry.name.endswith(SUFFIX):
            found.append(((*under, entry.name.removesuffix(SUFFIX)), entry.read_text("utf-8")))
    return found


def _target(name: str, parts: tuple[str, ...]) -> Path:
    # `package/` is the import package; `tests/test_backend.py` is named after the backend, since
    # every plugin's tests are top-level modules of one test run and must not clash.
    mapped = list(parts)
    if mapped[0] == "package":
        mapped[0] = f"gateway_{name}"
    elif mapped == ["tests", "test_backend.py"]:
        mapped[1] = f"test_{name}.py"
    return Path(*mapped)


def check_name(name: str, plugins_dir: Path, host: PluginHost | None = None) -> None:
    """Raise `ScaffoldError` unless `name` is a fresh backend name for `plugins_dir`."""
    if not NAME_RULE.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a backend name: a lower-case letter, then 1 to 30 lower-case"
            " letters, digits or '_'"
        )
    if (plugins_dir / name).exists():
        raise ScaffoldError(f"{plugins_dir / name} exists already")
    if name in (host or PluginHost.build()).backends:
        raise ScaffoldError(f"a backend called {name!r} is installed already")


def check_fragment(name: str, text: str, host: PluginHost) -> None:
    """Raise `ScaffoldError` if the rendered fragment would not merge with the contract and the
    installed backends' fragments (a name whose tag, path or schema is taken, e.g. `products`):
    the plugin would stop the gateway's start-up."""
    try:
        merged_contract({**host.fragments(), name: yaml.safe_load(text)})
    except ContractError as exc:
        raise ScaffoldError(
            f"{name!r} cannot be a backend name: its own operation would clash with the served"
            f" contract: {'; '.join(exc.problems)}"
        ) from None


def new_backend(name: str, plugins_dir: Path) -> list[Path]:
    """Write the plugin `name` into `plugins_dir/name`; the files written, relative to it."""
    host = PluginHost.build()
    check_name(name, plugins_dir, host)
    values = {"name": name, "Camel": class_prefix(name), "UPPER": name.upper()}
    folder = resources.files("gateway").joinpath(TEMPLATES)
    # Render everything before writing anything: a broken template leaves no half plugin.
    rendered = [
        (_target(name, parts), string.Template(text).substitute(values))
        for parts, text in _templates(folder)
    ]
    check_fragment(name, dict(rendered)[_target(name, FRAGMENT)], host)
    root = plugins_dir / name
    for path, text in rendered:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return [path for path, _ in rendered]
