"""The test kit (`gateway.testing`) as pytest fixtures, for a backend's own tests.

pytest loads this module by itself wherever the gateway is installed: the gateway's distribution
declares it under the `pytest11` entry point (with `PYTEST_DISABLE_PLUGIN_AUTOLOAD` set, name it
in the root conftest: `pytest_plugins = ["gateway.pytest_plugin"]`). Async fixtures run on
pytest-asyncio (pytest-aiohttp brings it). Production code never imports this module.

- `start_gateway("name")`: a running `SandboxGateway` in front of that backend's sandbox; every
  gateway started is stopped when the test ends.
- `subscriber`: a running `WebhookSubscriber`; `await gateway.subscribe(subscriber)`.
- `contract_check`: the `ContractCheck` every gateway of the test reports to; the test fails at
  teardown if any answer drifted from the contract.
- `gateway_logs`: the `GatewayLogs` of the test: every line the gateway logged since it began
  (`gateway_logs.events("upstream.call")`: each upstream attempt), from the session's one log
  file, `gateway_log_file`, which logging is pointed at when a test first asks for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from gateway import testing


@pytest.fixture
def contract_check() -> Iterator[testing.ContractCheck]:
    """Checks every answer of the test's gateways against the contract; any drift (an
    undocumented status, another content type, a body breaking its schema) fails the test."""
    check = testing.ContractCheck()
    yield check
    check.assert_clean()


@pytest_asyncio.fixture
async def start_gateway(
    contract_check: testing.ContractCheck,
) -> AsyncIterator[testing.StartGateway]:
    """Starts gateways in front of backends' sandboxes; all stop when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            backend: str,
            *,
            plugins: Iterable[object] = (),
            settings: Mapping[str, Mapping[str, Any]] | None = None,
            tenant_config: testing.TenantTable | None = None,
            tenants: Mapping[str, testing.TenantTable | None] | None = None,
            sandbox_app: web.Application | None = None,
        ) -> testing.SandboxGateway:
            return await stack.enter_async_context(
                testing.sandbox_gateway(
                    backend,
                    plugins=plugins,
                    settings=settings,
                    tenant_config=tenant_config,
                    tenants=tenants,
                    sandbox_app=sandbox_app,
                    contract=contract_check,
                )
            )

        yield start


@pytest_asyncio.fixture
async def subscriber() -> AsyncIterator[testing.WebhookSubscriber]:
    """A webhook subscriber on a local port; fails the test if a delivery did not verify."""
    async with testing.webhook_subscriber() as started:
        yield started


@pytest.fixture(scope="session")
def gateway_log_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's one JSON-lines file of the gateway's log output (debug level), logged to
    from the first test that asks for it until the session ends."""
    path = tmp_path_factory.mktemp("gateway-logs") / "gateway.jsonl"
    with testing.logging_to(path):
        yield path


@pytest.fixture
def gateway_logs(gateway_log_file: Path) -> testing.GatewayLogs:
    """The lines the gateway logs during the test (and none from before it)."""
    return testing.GatewayLogs(gateway_log_file)
