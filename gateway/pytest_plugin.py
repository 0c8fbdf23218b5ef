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
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import pytest
import pytest_asyncio

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
            tenant_config: Mapping[str, Any] | None = None,
        ) -> testing.SandboxGateway:
            return await stack.enter_async_context(
                testing.sandbox_gateway(
                    backend,
                    plugins=plugins,
                    settings=settings,
                    tenant_config=tenant_config,
                    contract=contract_check,
                )
            )

        yield start


@pytest_asyncio.fixture
async def subscriber() -> AsyncIterator[testing.WebhookSubscriber]:
    """A webhook subscriber on a local port; fails the test if a delivery did not verify."""
    async with testing.webhook_subscriber() as started:
        yield started
