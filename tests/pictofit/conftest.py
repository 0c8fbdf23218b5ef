"""Fixtures for the core's tests through the PICTOFiT backend (its own tests are in
plugins/pictofit/tests): a real gateway in front of the real PICTOFiT sandbox.

The sandbox runs as a server, the gateway as another one on a port known in advance, so that
`server.public_url` is right and the sandbox's callbacks reach the gateway over HTTP. Two tenants
share the sandbox's one customer, each with its own PICTOFiT key (referenced from the environment,
as operators would); by default only tenant A has a callback secret (B receives no callbacks), and
`tenant_b=shared_secret_b` gives B the same one, so that the customer's one registration serves
both.
"""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port
from PIL import Image

from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.state import CALLBACKS
from gateway.tenants import digest_key
from gateway.testing import ContractCheck
from gateway_pictofit.sandbox import (
    SANDBOX_STATE,
    PictofitSandboxSettings,
    PictofitSandboxState,
    create_sandbox_app,
)
from tests.conftest import CALLER_KEY_A, CALLER_KEY_B, SECRETS, eventually

PICTOFIT_KEY_A = "pictofit-key-A-4Hq9mZt2w"
PICTOFIT_KEY_B = "pictofit-key-B-Rv7c1Lx8p"
CALLBACK_SECRET = "pictofit-callback-secret-A-Yb3n6Kd0"
OTHER_CALLBACK_SECRET = "pictofit-callback-secret-B-Pm2x7Hc5"
TOKEN_PASSWORD = "pictofit-token-password-Jw5s2Qe7"
TOKEN_CLIENT_SECRET = "pictofit-client-secret-Tf8k3Vu1"
SECRETS.extend(
    [
        PICTOFIT_KEY_A,
        PICTOFIT_KEY_B,
        CALLBACK_SECRET,
        OTHER_CALLBACK_SECRET,
        TOKEN_PASSWORD,
        TOKEN_CLIENT_SECRET,
    ]
)

ENV = {
    "TEST_PICTOFIT_KEY_A": PICTOFIT_KEY_A,
    "TEST_PICTOFIT_KEY_B": PICTOFIT_KEY_B,
    "TEST_PICTOFIT_CALLBACK_SECRET": CALLBACK_SECRET,
    "TEST_PICTOFIT_OTHER_CALLBACK_SECRET": OTHER_CALLBACK_SECRET,
    "TEST_PICTOFIT_PASSWORD": TOKEN_PASSWORD,
    "TEST_PICTOFIT_CLIENT_SECRET": TOKEN_CLIENT_SECRET,
}
TOKEN_USER = "gateway-tenant-a"
CUSTOMER = PictofitSandboxSettings().customer_id


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


def shared_secret_b(sandbox_url: str) -> dict[str, Any]:
    """Tenant B with tenant A's callback secret (another reference to the same value)."""
    return {**tenant_b_config(sandbox_url), "callback_secret": "env:TEST_PICTOFIT_CALLBACK_SECRET"}


@attrs.define
class Pictofit:
    """A running gateway and the sandbox behind it."""

    client: TestClient[Any, Any]
    sandbox: PictofitSandboxState
    sandbox_url: str
    public_url: str

    @staticmethod
    def auth(key: str = CALLER_KEY_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def call(
        self, method: str, path: str, key: str = CALLER_KEY_A, expect: int | None = None, **kw: Any
    ) -> Any:
        """Call the gateway; check the status when `expect` is given; answer the JSON (or None)."""
        response = await self.client.request(method, path, headers=self.auth(key), **kw)
        text = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {text}"
        return await response.json(content_type=None) if text else None

    async def put_product(
        self, product_id: str | None = None, key: str = CALLER_KEY_A, **body: Any
    ) -> str:
        product_id = product_id or str(uuid.uuid4())
        payload = {"name": "Silk shirt", "type": "GARMENT_2D", **body}
        await self.call("PUT", f"/v1/products/{product_id}", key, 201, json=payload)
        return product_id

    async def put_configuration(self, product_id: str, key: str = CALLER_KEY_A) -> str:
        configuration_id = str(uuid.uuid4())
        path = f"/v1/products/{product_id}/configurations/{configuration_id}"
        await self.call("PUT", path, key, 201, json={"name": "Blue, M", "sku": "shirt-blue-m"})
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
        key: str = CALLER_KEY_A,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("kind", kind)
        form.add_field("file", content, filename=filename, content_type=content_type)
        path = f"/v1/products/{product_id}/configurations/{configuration_id}/images"
        return await self.client.post(path, data=form, headers=self.auth(key))

    async def events(self, key: str = CALLER_KEY_A) -> list[dict[str, Any]]:
        body = await self.call("GET", "/v1/events", key, 200)
        items: list[dict[str, Any]] = body["items"]
        return items

    def upstream_requests(self) -> list[Any]:
        return list(self.sandbox.requests)


MakePictofit = Callable[..., Awaitable[Pictofit]]


@pytest.fixture
def pictofit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def make_pictofit(
    aiohttp_client: Any,
    aiohttp_server: Any,
    tmp_path: Path,
    pictofit_env: None,
    contract_check: ContractCheck,
) -> MakePictofit:
    """Start the sandbox and a gateway in front of it.

    `tenant_a` and `tenant_b` replace the tenants' tables (functions of the sandbox URL),
    `sandbox` tunes the simulator and `faults` its fault knobs from the start, `upstream` the
    [upstream] policy; `wait_synced` waits for tenant A's callbacks; `store_url` replaces the
    test's SQLite file, `telemetry` is a [telemetry] table; `behind` starts another gateway in
    front of that one's sandbox (give it the same `store_url`: a replica, or a restart).
    """

    async def make(
        *,
        tenant_a: Callable[[str], Mapping[str, Any]] = tenant_a_config,
        tenant_b: Callable[[str], Mapping[str, Any]] = tenant_b_config,
        sandbox: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        upstream: Mapping[str, Any] | None = None,
        wait_synced: bool = True,
        store_url: str | None = None,
        telemetry: Mapping[str, Any] | None = None,
        behind: Pictofit | None = None,
    ) -> Pictofit:
        if behind is None:
            sandbox_settings = PictofitSandboxSettings(
                **{
                    "api_keys": frozenset({PICTOFIT_KEY_A, PICTOFIT_KEY_B}),
                    "token_users": {TOKEN_USER: TOKEN_PASSWORD},
                    "client_secret": TOKEN_CLIENT_SECRET,
                    "processing_delay_s": 0.05,
                    **(sandbox or {}),
                }
            )
            server: TestServer = await aiohttp_server(create_sandbox_app(sandbox_settings))
            sandbox_url = str(server.make_url("")).rstrip("/")
            state = server.app[SANDBOX_STATE]
            for knob, value in (faults or {}).items():
                setattr(state.faults, knob, value)
        else:  # another gateway (a replica, a restart) in front of the same sandbox
            sandbox_url, state = behind.sandbox_url, behind.sandbox
        port = unused_port()
        public_url = f"http://127.0.0.1:{port}"
        raw = {
            "store": {"url": store_url or f"sqlite:///{tmp_path}/gateway.db"},
            "server": {"public_url": public_url},
            "upstream": {"backoff_base": 0.001, "backoff_cap": 0.01, **(upstream or {})},
            "tenants": [
                {
                    "id": "tenant-a",
                    "keys": [digest_key(CALLER_KEY_A)],
                    "backends": {"pictofit": dict(tenant_a(sandbox_url))},
                },
                {
                    "id": "tenant-b",
                    "keys": [digest_key(CALLER_KEY_B)],
                    "backends": {"pictofit": dict(tenant_b(sandbox_url))},
                },
            ],
        }
        if telemetry is not None:
            raw["telemetry"] = dict(telemetry)
        app = contract_check.install(create_app(load_settings(raw)))
        client = await aiohttp_client(TestServer(app, host="127.0.0.1", port=port))
        gateway = Pictofit(client, state, sandbox_url, public_url)
        if wait_synced:
            await wait_for(lambda: client.app[CALLBACKS].states[("tenant-a", "pictofit")].state)
        return gateway

    return make


async def wait_for(probe: Callable[[], Any], expected: Any = "synced", within: float = 5.0) -> None:
    """Wait until `probe()` equals `expected` (background work settles)."""
    await eventually(lambda: probe() == expected, within)


async def wait_for_events(
    gateway: Pictofit, count: int, key: str = CALLER_KEY_A, within: float = 5.0
) -> list[dict[str, Any]]:
    """The tenant's events, once there are at least `count`."""
    async with asyncio.timeout(within):
        # Polling the gateway's own API, as a subscriber would.
        while len(events := await gateway.events(key)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return events


@pytest.fixture
async def pictofit(make_pictofit: MakePictofit) -> Pictofit:
    return await make_pictofit()


# --- images -----------------------------------------------------------------------------------


@functools.cache
def image(fmt: str = "PNG", width: int = 1200, height: int = 900, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    colour: Any = (40, 90, 200) if mode == "RGB" else (10, 20, 30, 40)
    Image.new(mode, (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()
