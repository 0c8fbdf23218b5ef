"""Upstream callbacks' bodies: received whole up to 1 MiB, refused with 413 beyond, however sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.dispatch import MAX_CALLBACK_BYTES
from gateway.plugin_api import Reply
from gateway.state import STORE
from tests.conftest import CALLBACK_SECRET_A, Gateway, MakeGateway

PATH = "/callbacks/acme/tenant-a/done/1"
AUTH = {"Authorization": CALLBACK_SECRET_A}


async def chunked(size: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`size` bytes sent with Transfer-Encoding: chunked (no Content-Length)."""
    sent = 0
    while sent < size:
        piece = min(chunk, size - sent)
        yield b"x" * piece
        sent += piece


async def stored_events(gateway: Gateway) -> int:
    store = gateway.client.app[STORE]
    page = await store.list_events("tenant-a", event_type=None, after=None, limit=10)
    return len(page.items)


@pytest.mark.parametrize("streamed", [True, False], ids=["chunked", "content-length"])
async def test_a_callback_body_over_1_mib_is_413(gateway: Gateway, streamed: bool) -> None:
    """One byte over the limit: 413 problem with the limit, and nothing stored (before: a chunked
    body was cut at 1 MiB without a word and answered 204)."""
    size = MAX_CALLBACK_BYTES + 1
    body: Any = chunked(size) if streamed else b"x" * size
    response = await gateway.client.post(PATH, data=body, headers=AUTH)
    assert response.status == 413, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await response.json())["limitBytes"] == MAX_CALLBACK_BYTES
    assert await stored_events(gateway) == 0


async def test_a_callback_body_of_1_mib_arrives_whole(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly the limit, sent in many chunks, reaches the plugin byte for byte (before: only what
    the first read found buffered)."""
    from tests import acme_backend

    received: list[int] = []

    async def record(self: Any, call: Any) -> Reply:
        received.append(len(call.body))
        return Reply(204)

    monkeypatch.setattr(acme_backend.AcmeBackend, "callback", record)
    gateway: Gateway = await make_gateway()
    response = await gateway.client.post(PATH, data=chunked(MAX_CALLBACK_BYTES), headers=AUTH)
    assert response.status == 204, await response.text()
    assert received == [MAX_CALLBACK_BYTES]
