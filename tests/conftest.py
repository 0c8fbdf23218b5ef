"""Shared fixtures: the real app factory, the Acme test backend and its simulator, log capture.

`contract_check` (every answer of the apps the fixtures build, checked against the contract) and
`eventually` come from the backend authors' test kit (`gateway.testing`, its fixtures loaded by
pytest from `gateway.pytest_plugin`), as a plugin's own tests get them.

Every line the gateway logs during the whole session goes to one JSON-lines file (the kit's
`gateway_log_file`, which a plugin's tests share); the session ends by searching it for every
secret the tests configured (see `log_file`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.contract import Contract
from gateway.plugins import PluginHost
from gateway.settings import Settings
from gateway.state import CALLBACKS
from gateway.store.opening import open_store
from gateway.store.protocol import Store
from gateway.tenants import digest_key
from gateway.testing import ContractCheck, GatewayLogs, eventually
from tests.acme_backend import ACME_STATE, AcmePlugin, AcmeUpstreamState, make_acme_upstream
from tests.pg import (  # noqa: F401 - PostgreSQL fixtures for every module
    PostgresServer,
    pg_server,
    pg_url,
)

CALLER_KEY_A = "gwk_test-caller-key-tenant-a-5b1d0c"
CALLER_KEY_B = "gwk_test-caller-key-tenant-b-93e7aa"
ACME_KEY_A = "acme-upstream-key-A-7Q2x9w"
ACME_KEY_B = "acme-upstream-key-B-k3L8vz"
CALLBACK_SECRET_A = "acme-callback-secret-A-88af1e"

# Findings a test reports (not assertions): printed at the end of the run.
REPORTS: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in REPORTS:
        terminalreporter.write_line(line)


# Every secret any test configures; none may appear in any log line of the session.
SECRETS = [CALLER_KEY_A, CALLER_KEY_B, ACME_KEY_A, ACME_KEY_B, CALLBACK_SECRET_A]


@pytest.fixture(scope="session", autouse=True)
def log_file(gateway_log_file: Path) -> Iterator[Path]:
    """All log output of the session (the kit's one file); at the end, proves no configured
    secret was ever logged."""
    yield gateway_log_file
    text = gateway_log_file.read_text(encoding="utf-8")
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets appeared in log output: {leaked}"


@pytest.fixture
def logs(log_file: Path) -> GatewayLogs:
    return GatewayLogs(log_file)


@attrs.define
class Gateway:
    """A running gateway with its Acme upstream, and helpers for calling it as tenant A or B."""

    client: TestClient[Any, Any]
    upstream: AcmeUpstreamState
    upstream_url: str
    settings: Settings

    @staticmethod
    def auth(key: str = CALLER_KEY_A, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", **extra}


def gateway_config(
    tmp_path: Path,
    acme_url: str,
    *,
    events: dict[str, Any] | None = None,
    store_url: str | None = None,
    **upstream: Any,
) -> dict[str, Any]:
    """Two tenants on the Acme backend, each with its own upstream key (referenced from env)."""
    return {
        "events": events or {},
        "store": {"url": store_url or f"sqlite:///{tmp_path}/gateway.db"},
        "server": {"max_upload_mb": 2, "public_url": "http://gateway.test"},
        "upstream": {"backoff_base": 0.001, "backoff_cap": 0.01, **upstream},
        "tenants": [
            {
                "id": "tenant-a",
                "keys": [digest_key(CALLER_KEY_A)],
                "backends": {
                    "acme": {
                        "base_url": acme_url,
                        "api_key": "env:TEST_ACME_KEY_A",
                        "callback_secret": "env:TEST_CALLBACK_SECRET_A",
                    }
                },
            },
            {
                "id": "tenant-b",
                "keys": [digest_key(CALLER_KEY_B)],
                "backends": {"acme": {"base_url": acme_url, "api_key": "env:TEST_ACME_KEY_B"}},
            },
        ],
    }


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ACME_KEY_A", ACME_KEY_A)
    monkeypatch.setenv("TEST_ACME_KEY_B", ACME_KEY_B)
    monkeypatch.setenv("TEST_CALLBACK_SECRET_A", CALLBACK_SECRET_A)


MakeGateway = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind; PostgreSQL's on the session's own server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return await server.create_database()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on each kind of database (`store_url`)."""
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def twin(store: Store, store_url: str) -> AsyncIterator[Store]:
    """A second store on the same database, as another gateway process would have."""
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def make_gateway(
    aiohttp_client: Any,
    aiohttp_server: Any,
    tmp_path: Path,
    secrets_env: None,
    contract_check: ContractCheck,
) -> MakeGateway:
    """Start the Acme simulator and a gateway in front of it; `events` tunes [events], other
    keyword arguments [upstream]; `store_url` replaces the test's SQLite file, `resolver` the
    system's name lookups for webhook targets; `telemetry` is a [telemetry] table, with
    `span_exporter` receiving its spans."""

    async def make(
        *,
        events: dict[str, Any] | None = None,
        store_url: str | None = None,
        resolver: AbstractResolver | None = None,
        telemetry: dict[str, Any] | None = None,
        span_exporter: Any = None,
        **upstream: Any,
    ) -> Gateway:
        server: TestServer = await aiohttp_server(make_acme_upstream(ACME_KEY_A, ACME_KEY_B))
        url = str(server.make_url("")).rstrip("/")
        config = gateway_config(tmp_path, url, events=events, store_url=store_url, **upstream)
        if telemetry is not None:
            config["telemetry"] = telemetry
        settings = load_settings(config)
        app = create_app(
            settings, extra_plugins=[AcmePlugin()], resolver=resolver, span_exporter=span_exporter
        )
        client = await aiohttp_client(contract_check.install(app))
        # Start-up registers callbacks upstream; let it finish so tests own the simulator.
        registrar = client.app[CALLBACKS]
        await eventually(lambda: all(s.state != "pending" for s in registrar.states.values()))
        return Gateway(client, server.app[ACME_STATE], url, settings)

    return make


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    gateway: Gateway = await make_gateway()
    return gateway


def gateway_contract() -> Contract:
    """The contract the tests' gateways serve: the core's, with the fragments of the installed
    backends and of Acme merged in (built once: `merged_contract` caches it)."""
    return PluginHost.build(extra=[AcmePlugin()]).contract()
