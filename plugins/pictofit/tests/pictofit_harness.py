"""The PICTOFiT tests' harness: a real gateway in front of the real PICTOFiT sandbox, through the
kit (`start_gateway`), whose public URL is its own, so the sandbox's callbacks reach it over HTTP.

Two tenants share the sandbox's one customer, each with its own PICTOFiT key (referenced from the
environment, as operators would); by default only tenant A has a callback secret (B receives no
callbacks). Test modules import the fixtures they use (and name them in `__all__`).
"""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from gateway.plugin_api import GatewayLogs, SandboxGateway, StartGateway, eventually
from gateway_pictofit.sandbox import (
    SANDBOX_STATE,
    PictofitSandboxSettings,
    PictofitSandboxState,
    create_sandbox_app,
)

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
PICTOFIT_KEY_A = "pictofit-key-A-4Hq9mZt2w"
PICTOFIT_KEY_B = "pictofit-key-B-Rv7c1Lx8p"
CALLBACK_SECRET = "pictofit-callback-secret-A-Yb3n6Kd0"
TOKEN_PASSWORD = "pictofit-token-password-Jw5s2Qe7"
TOKEN_CLIENT_SECRET = "pictofit-client-secret-Tf8k3Vu1"
# A key the sandbox does not know, recognisable so that all output can be searched for it.
WRONG_KEY = "pictofit-WRONG-key-Gz6p0Na4"

ENV = {
    "TEST_PICTOFIT_KEY_A": PICTOFIT_KEY_A,
    "TEST_PICTOFIT_KEY_B": PICTOFIT_KEY_B,
    "TEST_PICTOFIT_CALLBACK_SECRET": CALLBACK_SECRET,
    "TEST_PICTOFIT_PASSWORD": TOKEN_PASSWORD,
    "TEST_PICTOFIT_CLIENT_SECRET": TOKEN_CLIENT_SECRET,
    "TEST_PICTOFIT_WRONG_KEY": WRONG_KEY,
}
TOKEN_USER = "gateway-tenant-a"
CUSTOMER = PictofitSandboxSettings().customer_id

Table = Callable[[str], Mapping[str, Any]]


def tenant_a_config(sandbox_url: str) -> dict[str, Any]:
    return {
        "base_url": sandbox_url,
        "customer_id": CUSTOMER,
        "api_key": "env:TEST_PICTOFIT_KEY_A",
        "callback_secret": "env:TEST_PICTOFIT_CALLBACK_SECRET",
    }


def tenant_b_config(sandbox_url: str) -> dict[str, Any]:
    """Tenant B: the same customer, its own key, no callback secret."""
    return {
        "base_url": sandbox_url,
        "customer_id": CUSTOMER,
        "api_key": "env:TEST_PICTOFIT_KEY_B",
    }


def token_config(sandbox_url: str) -> dict[str, Any]:
    """Tenant A in the older token mode, against the sandbox's `/connect/token`."""
    config = tenant_a_config(sandbox_url)
    del config["api_key"]
    config["token"] = {
        "url": f"{sandbox_url}/connect/token",
        "username": TOKEN_USER,
        "password": "env:TEST_PICTOFIT_PASSWORD",
        "client_secret": "env:TEST_PICTOFIT_CLIENT_SECRET",
    }
    return config


def _whole(table: Table) -> Table:
    """`table` as the tenant's whole table: the sandbox's own keys it leaves out are dropped."""
    return lambda url: {"api_key": None, "callback_secret": None, **table(url)}


@attrs.define
class Pictofit:
    """A running gateway and the sandbox behind it."""

    kit: SandboxGateway
    sandbox: PictofitSandboxState

    @property
    def client(self) -> TestClient[web.Request, web.Application]:
        return self.kit.client

    @property
    def sandbox_url(self) -> str:
        return self.kit.sandbox_url

    @property
    def public_url(self) -> str:
        return self.kit.url

    def auth(self, tenant: str = TENANT_A) -> dict[str, str]:
        return self.kit.auth(tenant)

    async def call(
        self, method: str, path: str, tenant: str = TENANT_A, expect: int | None = None, **kw: Any
    ) -> Any:
        """Call the gateway; check the status when `expect` is given; answer the JSON (or None)."""
        response = await self.client.request(method, path, headers=self.auth(tenant), **kw)
        text = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {text}"
        return await response.json(content_type=None) if text else None

    async def put_product(
        self, product_id: str | None = None, tenant: str = TENANT_A, **body: Any
    ) -> str:
        product_id = product_id or str(uuid.uuid4())
        payload = {"name": "Silk shirt", "type": "GARMENT_2D", **body}
        await self.call("PUT", f"/v1/products/{product_id}", tenant, 201, json=payload)
        return product_id

    async def put_configuration(self, product_id: str, tenant: str = TENANT_A) -> str:
        configuration_id = str(uuid.uuid4())
        path = f"/v1/products/{product_id}/configurations/{configuration_id}"
        await self.call("PUT", path, tenant, 201, json={"name": "Blue, M", "sku": "shirt-blue-m"})
        return configuration_id

    async def upload(
        self,
        product_id: str,
        configuration_id: str,
        content: bytes,
        *,
        kind: str = "FRONTAL",
        content_type: str = "image/png",
        filename: str = "front.png",
        tenant: str = TENANT_A,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("kind", kind)
        form.add_field("file", content, filename=filename, content_type=content_type)
        path = f"/v1/products/{product_id}/configurations/{configuration_id}/images"
        return await self.client.post(path, data=form, headers=self.auth(tenant))

    async def events(self, tenant: str = TENANT_A) -> list[dict[str, Any]]:
        body = await self.call("GET", "/v1/events", tenant, 200)
        items: list[dict[str, Any]] = body["items"]
        return items

    def upstream_requests(self) -> list[Any]:
        return list(self.sandbox.requests)


MakePictofit = Callable[..., Awaitable[Pictofit]]


@pytest.fixture
async def make_pictofit(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> MakePictofit:
    """Start the sandbox and a gateway in front of it.

    `tenant_a` and `tenant_b` replace the tenants' tables (functions of the sandbox URL),
    `sandbox` tunes the simulator and `faults` its fault knobs from the start, `upstream` the
    [upstream] policy; `wait_synced` waits for tenant A's callbacks to be registered.
    """
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)

    async def make(
        *,
        tenant_a: Table = tenant_a_config,
        tenant_b: Table = tenant_b_config,
        sandbox: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        upstream: Mapping[str, Any] | None = None,
        wait_synced: bool = True,
    ) -> Pictofit:
        sandbox_settings = PictofitSandboxSettings(
            **{
                "api_keys": frozenset({PICTOFIT_KEY_A, PICTOFIT_KEY_B}),
                "token_users": {TOKEN_USER: TOKEN_PASSWORD},
                "client_secret": TOKEN_CLIENT_SECRET,
                "processing_delay_s": 0.05,
                **(sandbox or {}),
            }
        )
        app = create_sandbox_app(sandbox_settings)
        for knob, value in (faults or {}).items():
            setattr(app[SANDBOX_STATE].faults, knob, value)
        kit = await start_gateway(
            "pictofit",
            sandbox_app=app,
            settings={"upstream": upstream or {}},
            tenants={TENANT_A: _whole(tenant_a), TENANT_B: _whole(tenant_b)},
        )
        if wait_synced:
            await wait_for_listing(kit, "synced")
        return Pictofit(kit, app[SANDBOX_STATE])

    return make


async def wait_for_listing(kit: SandboxGateway, state: str, within: float = 5.0) -> None:
    """Wait until the first tenant's callbacks are in `state`, as `/v1/backends` shows it."""
    async with asyncio.timeout(within):
        while (await kit.listing())["health"]["callbacks"]["state"] != state:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def wait_for(probe: Callable[[], Any], expected: Any = "synced", within: float = 5.0) -> None:
    """Wait until `probe()` equals `expected` (background work settles)."""
    await eventually(lambda: probe() == expected, within)


async def wait_for_events(
    gateway: Pictofit, count: int, tenant: str = TENANT_A, within: float = 5.0
) -> list[dict[str, Any]]:
    """The tenant's events, once there are at least `count`."""
    async with asyncio.timeout(within):
        # Polling the gateway's own API, as a subscriber would.
        while len(events := await gateway.events(tenant)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return events


@pytest.fixture
async def pictofit(make_pictofit: MakePictofit) -> Pictofit:
    return await make_pictofit()


@functools.cache
def image(fmt: str = "PNG", width: int = 1200, height: int = 900, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    colour: Any = (40, 90, 200) if mode == "RGB" else (10, 20, 30, 40)
    Image.new(mode, (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def upstream_calls(logs: GatewayLogs) -> list[dict[str, Any]]:
    return [line for line in logs.events("upstream.call") if line["backend"] == "pictofit"]


def path_of(url: str) -> str:
    return urlsplit(url).path
