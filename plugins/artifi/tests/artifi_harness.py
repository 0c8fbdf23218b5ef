"""The Artifi tests' harness: a real gateway in front of the real Artifi sandbox, through the kit.

Two tenants, each on its own Artifi website with its own client key (referenced from the
environment as operators would). The sandbox gets one extra, test-only middleware (`Tap`) for what
its fault knobs cannot express: answering one request with a canned body, rewriting one request's
query, losing one answer, counting concurrent calls. Test modules import the fixtures they use
(and name them in `__all__`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from PIL import Image

from gateway.plugin_api import SandboxGateway, StartGateway
from gateway_artifi.sandbox import (
    SANDBOX_STATE,
    ArtifiSandboxSettings,
    ArtifiSandboxState,
    ArtifiWebsite,
    create_sandbox_app,
)

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"
ARTIFI_KEY_A = "artifi-client-key-A-Vq81xKe2"
ARTIFI_KEY_B = "artifi-client-key-B-p3Wd7Zr9"
# A wrong key, made recognisable so that a test can search all output for it.
WRONG_KEY = "artifi-WRONG-key-Zq9u4-findme"

WEBSITE_A = ArtifiWebsite(website_id=1234, client_key=ARTIFI_KEY_A)
# Tenant B's website is stricter: PNG only, 1 MB, 800x600.
WEBSITE_B = ArtifiWebsite(
    website_id=5678,
    client_key=ARTIFI_KEY_B,
    max_file_mb=1,
    image_extensions="PNG",
    max_width=800,
    max_height=600,
    image_dpi=300,
)

UPLOAD = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS = "/api/3/UploadImage/GetImageSettings"
LIST = "/api/3/UploadImage/GetUserUploadedList"
DELETE = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER = "/api/3/User/UpdateUserId"


# --- the test-only tap on the sandbox ----------------------------------------------------------


@attrs.frozen
class Rewrite:
    """Replace query parameters (None removes one) before the sandbox sees the request."""

    params: Mapping[str, str | None]


@attrs.frozen
class Answer:
    """Answer this instead of the sandbox."""

    status: int
    body: Any
    content_type: str = "application/json"


@attrs.frozen
class Drop:
    """Close the connection without an answer, before or after the sandbox handled the request."""

    after_handling: bool


@attrs.frozen
class Late:
    """Let the sandbox handle the request, then answer only after `seconds`."""

    seconds: float


Action = Rewrite | Answer | Drop | Late


@attrs.define
class Tap:
    """One-shot actions per sandbox path, a delay for every call, and a concurrency gauge."""

    pending: dict[str, Action] = attrs.field(factory=dict)
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def once(self, path: str, action: Action) -> None:
        self.pending[path] = action

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        action = self.pending.pop(request.path, None)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return await self._apply(action, request, handler)
        finally:
            self.in_flight -= 1

    async def _apply(
        self, action: Action | None, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if isinstance(action, Rewrite):
            query = {k: v for k, v in request.query.items() if k not in action.params}
            query.update({k: v for k, v in action.params.items() if v is not None})
            return await handler(request.clone(rel_url=request.rel_url.with_query(query)))
        if isinstance(action, Answer):
            return web.json_response(
                action.body, status=action.status, content_type=action.content_type
            )
        if isinstance(action, Drop):
            response = await handler(request) if action.after_handling else web.Response()
            if request.transport is not None:
                request.transport.close()
            return response
        if isinstance(action, Late):
            response = await handler(request)
            await asyncio.sleep(action.seconds)
            return response
        return await handler(request)


# --- the gateway -----------------------------------------------------------------------------


@attrs.define
class ArtifiGateway:
    """A running gateway (tenants A and B on Artifi) and its sandbox, with call helpers."""

    kit: SandboxGateway
    sandbox: ArtifiSandboxState
    tap: Tap

    @property
    def client(self) -> TestClient[web.Request, web.Application]:
        return self.kit.client

    def auth(self, tenant: str = TENANT_A, **extra: str) -> dict[str, str]:
        return self.kit.auth(tenant, **extra)

    async def upload(
        self,
        user: str,
        data: bytes,
        *,
        tenant: str = TENANT_A,
        filename: str = "holiday.jpg",
        content_type: str = "image/jpeg",
        **fields: str,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
        return await self.client.post(
            f"/v1/users/{user}/photos", data=form, headers=self.auth(tenant)
        )

    async def photos(
        self, user: str, *, tenant: str = TENANT_A, **query: str
    ) -> aiohttp.ClientResponse:
        return await self.client.get(
            f"/v1/users/{user}/photos", params=query, headers=self.auth(tenant)
        )

    async def delete(
        self, user: str, photo_id: str, *, tenant: str = TENANT_A
    ) -> aiohttp.ClientResponse:
        return await self.client.delete(
            f"/v1/users/{user}/photos/{photo_id}", headers=self.auth(tenant)
        )

    async def merge(
        self, user: str, guest: str, *, tenant: str = TENANT_A
    ) -> aiohttp.ClientResponse:
        return await self.client.post(
            f"/v1/users/{user}/merge", json={"guestUserId": guest}, headers=self.auth(tenant)
        )

    async def events(self, event_type: str, *, tenant: str = TENANT_A) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/events", params={"type": event_type}, headers=self.auth(tenant)
        )
        assert response.status == 200, await response.text()
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items

    def requests_to(self, path: str) -> list[Any]:
        return [r for r in self.sandbox.requests if r.path == path]


MakeArtifi = Callable[..., Awaitable[ArtifiGateway]]


@pytest.fixture
async def make_artifi(start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch) -> MakeArtifi:
    """Start the sandbox and a gateway; `tenant_a`/`tenant_b` override their artifi tables."""
    monkeypatch.setenv("TEST_ARTIFI_KEY_A", ARTIFI_KEY_A)
    monkeypatch.setenv("TEST_ARTIFI_KEY_B", ARTIFI_KEY_B)
    monkeypatch.setenv("TEST_ARTIFI_WRONG_KEY", WRONG_KEY)

    async def make(
        *,
        tenant_a: Mapping[str, Any] | None = None,
        tenant_b: Mapping[str, Any] | None = None,
        upstream: Mapping[str, Any] | None = None,
        max_upload_mb: int = 20,
    ) -> ArtifiGateway:
        tap = Tap()
        app = create_sandbox_app(ArtifiSandboxSettings(websites=(WEBSITE_A, WEBSITE_B), seed=3))
        app.middlewares.append(tap.middleware)
        kit = await start_gateway(
            "artifi",
            sandbox_app=app,
            settings={"server": {"max_upload_mb": max_upload_mb}, "upstream": upstream or {}},
            tenants={
                TENANT_A: {
                    "website_id": WEBSITE_A.website_id,
                    "client_key": "env:TEST_ARTIFI_KEY_A",
                    **(tenant_a or {}),
                },
                TENANT_B: {
                    "website_id": WEBSITE_B.website_id,
                    "client_key": "env:TEST_ARTIFI_KEY_B",
                    **(tenant_b or {}),
                },
            },
        )
        return ArtifiGateway(kit, kit.sandbox_app[SANDBOX_STATE], tap)

    return make


@pytest.fixture
async def artifi(make_artifi: MakeArtifi) -> ArtifiGateway:
    return await make_artifi()


# --- images ----------------------------------------------------------------------------------


def image(fmt: str = "JPEG", size: tuple[int, int] = (640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()
