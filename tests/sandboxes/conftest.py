"""The sandboxes' test clients, as fixtures: `client` on the Artifi sandbox, `sandbox` on the
PICTOFiT sandbox (with its state)."""

from __future__ import annotations

import pytest
from pytest_aiohttp import AiohttpClient

from gateway_artifi.sandbox import create_sandbox_app
from gateway_pictofit.sandbox import PictofitSandboxState
from tests.sandboxes.artifi_api import SETTINGS
from tests.sandboxes.artifi_calls import Client  # either sandbox's: a TestClient of a plain app
from tests.sandboxes.pictofit_client import make_client


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_sandbox_app(SETTINGS))


@pytest.fixture
async def sandbox(aiohttp_client: AiohttpClient) -> tuple[Client, PictofitSandboxState]:
    return await make_client(aiohttp_client)
