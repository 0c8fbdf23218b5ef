"""The PICTOFiT sandbox app under test: its key, and the app built with its settings together with
a test client for it and its state."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway_pictofit.sandbox import (
    SANDBOX_STATE,
    PictofitSandboxSettings,
    PictofitSandboxState,
    create_sandbox_app,
)

Client = TestClient[web.Request, web.Application]

KEY = "sandbox-pictofit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def make_client(
    aiohttp_client: AiohttpClient, **settings: Any
) -> tuple[Client, PictofitSandboxState]:
    settings.setdefault("processing_delay_s", 0.05)
    app = create_sandbox_app(PictofitSandboxSettings(**settings))
    client = await aiohttp_client(app)
    return client, app[SANDBOX_STATE]
