"""The configuration an operator starts from: `gateway.example.toml` and the README's sample pass
`gateway check` as written (with the variables they document), and the example shows every
setting at its default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import attrs

from gateway.config_loading import load_settings
from gateway.plugins import PluginHost
from gateway.settings import Settings
from gateway.values import Secret

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "gateway.example.toml"
README = ROOT / "README.md"
GATEWAY = str(Path(sys.executable).parent / "gateway")


def check(config: Path, cwd: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    return subprocess.run(
        [GATEWAY, "check", "--config", str(config)],
        cwd=cwd,
        env={**environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def documented_variables(text: str) -> list[str]:
    """The variables the file's `env:NAME` references need."""
    return sorted(set(re.findall(r'^[^#\n]*"env:([A-Z0-9_]+)"', text, re.MULTILINE)))


def test_example_passes_check_with_its_documented_variables(tmp_path: Path) -> None:
    """`gateway check --config gateway.example.toml` passes once the variables its header lists
    are set, and names each one that is not."""
    text = EXAMPLE.read_text(encoding="utf-8")
    variables = documented_variables(text)
    header = text.split("\n[", 1)[0]
    assert variables, "the example references no secret"
    for name in variables:
        assert f"#   {name} " in header, f"{name} is not documented in the example's header"
    result = check(EXAMPLE, tmp_path, {name: "x" for name in variables})
    assert result.returncode == 0, result.stderr
    unset = check(EXAMPLE, tmp_path, {})
    assert unset.returncode == 2
    for name in variables:
        assert f"env:{name}: environment variable is not set" in unset.stderr


def test_example_shows_every_core_setting_at_its_default() -> None:
    """Each table of the core is written out in full, and at its default: what the example says
    is what a missing key means."""
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    settings = load_settings(raw)
    defaults = Settings()
    for field in attrs.fields(attrs.resolve_types(Settings)):
        if field.name == "tenants":
            continue
        text = EXAMPLE.read_text(encoding="utf-8")
        if field.default is None:  # a table that is off unless written: shown commented out
            assert re.search(rf"^# \[{field.name}\]", text, re.MULTILINE), field.name
            [table] = [t for t in typing.get_args(field.type) if attrs.has(t)]
            for name in (f.name for f in attrs.fields(table)):
                assert re.search(rf"^# {name} = ", text, re.MULTILINE), f"{field.name}.{name}"
            continue
        section = getattr(settings, field.name)
        assert section == getattr(defaults, field.name), field.name
        optional = {f.name for f in attrs.fields(type(section)) if f.default is None}
        written = set(raw[field.name])
        missing = {f.name for f in attrs.fields(type(section))} - written - optional
        assert not missing, f"[{field.name}] leaves out {sorted(missing)}"
        text = EXAMPLE.read_text(encoding="utf-8")
        for name in optional:  # no default value to write: shown commented out
            assert re.search(rf"^# {name} = ", text, re.MULTILINE), name


def every_setting(cls: Any, path: str = "") -> list[str]:
    names = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        where = f"{path}.{field.name}" if path else field.name
        names.append(where)
        types = (field.type, *getattr(field.type, "__args__", ()))
        inner = [t for t in types if attrs.has(t) and t is not Secret]
        for t in inner:
            names += every_setting(t, where)
    return names


def test_example_names_every_backend_setting() -> None:
    """Each installed backend's table shows each of its settings (an exclusive alternative, like
    PICTOFiT's token table, commented out)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for name, config_type in PluginHost.build().config_types.items():
        assert f"[tenants.backends.{name}]" in text
        settings = every_setting(config_type)
        for setting in settings:
            key = setting.rpartition(".")[2]
            if any(s.startswith(f"{setting}.") for s in settings):  # a table of its own
                header = re.escape(f"[tenants.backends.{name}.{setting}]")
                assert re.search(rf"^#? ?{header}", text, re.MULTILINE), f"{name}: {setting}"
            else:
                assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"{name}: {setting}"


def readme_sample() -> str:
    section = README.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert found, "the README's Configuration section has no TOML sample"
    return found.group(1)


def test_readme_sample_passes_check_as_pasted(tmp_path: Path) -> None:
    """The README's sample configuration, pasted into a file, passes `gateway check` with the
    variables it references set (it had `customer_id = "…"` and a digest placeholder)."""
    sample = readme_sample()
    config = tmp_path / "gateway.toml"
    config.write_text(sample)
    variables = {name: "x" for name in documented_variables(sample)}
    result = check(config, tmp_path, variables)
    assert result.returncode == 0, result.stderr


def test_readme_points_to_the_example() -> None:
    """Operators find the example from the README."""
    assert "gateway.example.toml" in README.read_text(encoding="utf-8")
