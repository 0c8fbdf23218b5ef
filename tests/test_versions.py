"""One version per distribution, written in its pyproject.toml and read from its metadata."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import gateway
from gateway.plugins import PluginHost

ROOT = Path(__file__).resolve().parent.parent


def test_one_version_per_distribution_read_from_its_metadata() -> None:
    """A distribution's version is written once, in its pyproject.toml: the core's __version__
    (User-Agent, --version) and each backend's version in GET /v1/backends read its metadata."""
    assert gateway.__version__ == metadata.version("integration-gateway")
    backends = PluginHost.build().backends
    assert backends["pictofit"].version == metadata.version("gateway-pictofit")
    assert backends["artifi"].version == metadata.version("gateway-artifi")
    for pyproject in [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        literal = f'"{project["version"]}"'
        package = pyproject.parent / (
            "gateway" if pyproject.parent == ROOT else project["name"].replace("-", "_")
        )
        for source in package.rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert not re.search(rf"version\w*\s*=\s*{re.escape(literal)}", text), source
