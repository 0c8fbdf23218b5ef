"""Configuration errors name their path; the CLI's keys, spec, check and sandbox mode work."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import unused_port

from gateway.cli import main
from gateway.config_converter import ConfigError
from gateway.config_loading import load_settings, read_settings, structure_backend_configs
from gateway.contract import default_contract
from gateway.plugin_api import Secret
from gateway.plugins import PluginHost
from gateway.tenants import digest_key

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "ab" * 32


def load_all(raw: dict[str, Any]) -> None:
    settings = load_settings(raw)
    structure_backend_configs(settings, PluginHost.build().config_types)


def problems_of(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_all(raw)
    return caught.value.problems


def test_missing_backend_field_is_named_by_path() -> None:
    """A missing field of a backend's own config class is reported at its full path."""
    raw = {
        "tenants": [
            {
                "id": "shop-eu",
                "keys": [DIGEST],
                "backends": {"artifi": {"base_url": "https://x", "website_id": 1}},
            }
        ]
    }
    assert "tenants[0].backends.artifi.client_key: missing" in problems_of(raw)


@pytest.mark.parametrize("tenant_id", ["shop.eu", "-shop", "_shop", "shop\n", "s" * 65, "shop eu"])
def test_a_tenant_id_callbacks_cannot_reach_is_refused(tenant_id: str) -> None:
    """One tenant id rule, the contract's: an id its callback route refuses (a dot, say) is a
    configuration mistake, not a tenant whose every callback gets 400."""
    found = problems_of({"tenants": [{"id": tenant_id, "keys": [DIGEST]}]})
    assert any(p.startswith("tenants[0].id:") for p in found), found


@pytest.mark.parametrize("tenant_id", ["shop-eu", "A", "shop_eu-2", "9" * 64])
def test_every_configurable_tenant_id_reaches_its_callback_route(tenant_id: str) -> None:
    """Whatever id the configuration takes, the callback route's `tenantId` takes too."""
    load_all({"tenants": [{"id": tenant_id, "keys": [DIGEST]}]})
    route = default_contract().operations["receiveBackendCallback"]
    (parameter,) = [p for p in route.params_in("path") if p.name == "tenantId"]
    assert parameter.check(tenant_id)[1] == []


def test_unknown_keys_and_bad_values_are_named() -> None:
    """Extra keys are refused; wrong types and bad digests say where they are."""
    found = problems_of({"server": {"port": "eighty", "colour": "red"}})
    assert any(p.startswith("server.port:") for p in found)
    assert any("colour" in p for p in found)
    found = problems_of({"tenants": [{"id": "t", "keys": ["plain-text-key"]}]})
    assert any(p.startswith("tenants[0].keys[0]:") for p in found)


def test_unknown_backend_is_named() -> None:
    """A backend table for a backend that is not installed is an error naming the known ones."""
    found = problems_of({"tenants": [{"id": "t", "keys": [DIGEST], "backends": {"nope": {}}}]})
    assert any(p.startswith("tenants[0].backends.nope:") and "artifi" in p for p in found)


def test_secrets_must_be_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A literal secret in the file is refused; env: and file: references resolve on use."""
    raw = {
        "tenants": [
            {
                "id": "t",
                "keys": [DIGEST],
                "backends": {
                    "artifi": {"base_url": "https://x", "website_id": 1, "client_key": "literal"}
                },
            }
        ]
    }
    assert any("client_key" in p for p in problems_of(raw))
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    assert Secret(f"file:{secret_file}").reveal() == "from-a-file"
    monkeypatch.setenv("SOME_KEY", "from-env")
    assert Secret("env:SOME_KEY").reveal() == "from-env"
    assert "from-env" not in repr(Secret("env:SOME_KEY"))


def test_check_command_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway check` exits 2 and prints each mistake; a good file is reported valid."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tenants]]\nid = "t"\nkeys = ["x"]\n')
    assert main(["check", "--config", str(bad)]) == 2
    assert "tenants[0].keys[0]" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text(f'[[tenants]]\nid = "t"\nkeys = ["{DIGEST}"]\n')
    assert main(["check", "--config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    assert read_settings(good).tenants[0].id == "t"


def test_keys_new_prints_key_and_matching_digest(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway keys new` prints a fresh key and the config line holding its digest."""
    assert main(["keys", "new", "--tenant", "shop-eu"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"(gwk_\S+)", out)
    assert key is not None
    assert f'keys = ["{digest_key(key.group(1))}"]' in out


def test_spec_prints_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway spec` prints the contract as YAML (and JSON with --format json)."""
    assert main(["spec"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["openapi"].startswith("3.1")


def test_workers_with_sqlite_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """More than one worker on SQLite is refused with a clear message."""
    assert main(["serve", "--sandbox", "--workers", "2"]) == 2
    assert "SQLite" in capsys.readouterr().err


async def test_sandbox_mode_serves_a_demo_tenant(tmp_path: Path) -> None:
    """`gateway serve --sandbox` needs no config, prints a working key, and serves /v1."""
    port = unused_port()
    env = {**os.environ, "GATEWAY_SANDBOX_KEY": "gwk_sandbox-test-key"}
    env.pop("GATEWAY_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--sandbox",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        banner = ""
        async with asyncio.timeout(20):
            while "caller key" not in banner:
                banner += (await process.stdout.readline()).decode()
        assert "gwk_sandbox-test-key" in banner
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            auth = {"Authorization": "Bearer gwk_sandbox-test-key"}
            async with http.get("/v1/backends", headers=auth) as response:
                assert response.status == 200
                names = {b["name"] for b in (await response.json())["items"]}
            assert {"pictofit", "artifi"} <= names
            async with http.get("/readyz") as response:
                assert response.status in {200, 503}
        assert (tmp_path / ".gateway-data" / "gateway.db").exists()
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
