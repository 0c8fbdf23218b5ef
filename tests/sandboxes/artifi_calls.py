"""Calls to the Artifi sandbox in its tests: test images and upload forms, the state behind a test
client, and the upload and read steps."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from gateway_artifi.sandbox import SANDBOX_STATE, ArtifiSandboxState
from tests.sandboxes.artifi_api import CREDS, UPLOAD

Client = TestClient[web.Request, web.Application]


def image_bytes(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def photo_form(data: bytes, filename: str = "holiday.jpg", ctype: str = "image/jpeg") -> Any:
    form = aiohttp.FormData()
    # BytesIO: aiohttp warns about large raw bytes bodies.
    form.add_field("postedFile", io.BytesIO(data), filename=filename, content_type=ctype)
    return form


def state_of(client: Client) -> ArtifiSandboxState:
    assert client.app is not None
    return client.app[SANDBOX_STATE]


async def upload(
    client: Client, user: str = "user-1", data: bytes | None = None, **params: str
) -> dict[str, Any]:
    query = {**CREDS, "frontAppUserId": user, **params}
    form = photo_form(data if data is not None else image_bytes("JPEG"))
    async with client.post(UPLOAD, params=query, data=form) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def get_json(client: Client, path: str, **params: str) -> dict[str, Any]:
    async with client.get(path, params={**CREDS, **params}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body
