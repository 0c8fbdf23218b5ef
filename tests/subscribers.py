"""Subscribers for the webhook tests, and the steps that make deliveries: a subscriber recording
what it got (`receiver`, the fixture), subscribing, an upstream callback that makes an event, a
gateway whose workers poll often, and waiting for an event's deliveries to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

from gateway.state import STORE
from tests.conftest import CALLBACK_SECRET_A, Gateway, MakeGateway


@attrs.define
class Receiver:
    """A subscriber: a real server recording what it got, told per path how to answer."""

    server: TestServer
    got: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = attrs.field(factory=dict)
    hang: set[str] = attrs.field(factory=set)
    release: asyncio.Event = attrs.field(factory=asyncio.Event)

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))

    def bodies(self, name: str) -> list[dict[str, Any]]:
        return self.got.get(name, [])


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[Receiver]:
    state = Receiver(server=None)  # type: ignore[arg-type]

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        got = {"headers": dict(request.headers), "body": body, "at": time.monotonic()}
        state.got.setdefault(name, []).append(got)
        if name in state.hang:
            await state.release.wait()
        queued = state.answers.get(name)
        if queued:
            status, headers = queued.pop(0)
            return web.Response(status=status, headers=headers, text="not now")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    state.server = await aiohttp_server(app)
    yield state
    state.release.set()


async def subscribe(gateway: Gateway, url: str, types: list[str], key: str | None = None) -> Any:
    headers = gateway.auth(key) if key else gateway.auth()
    response = await gateway.client.post(
        "/v1/subscriptions", json={"url": url, "eventTypes": types}, headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def callback(gateway: Gateway, path: str) -> None:
    response = await gateway.client.post(
        f"/callbacks/acme/tenant-a/{path}", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert response.status == 204, await response.text()


def verify(secret: str, delivered: dict[str, Any]) -> Any:
    headers = {k.lower(): v for k, v in delivered["headers"].items()}
    return Webhook(secret).verify(delivered["body"], headers)


async def wait_until_final(gateway: Gateway, event_id: str) -> None:
    """Wait until every delivery of the event is succeeded or failed."""
    store = gateway.client.app[STORE]
    async with asyncio.timeout(5):
        while True:
            deliveries = await store.list_deliveries("tenant-a", event_id)
            if deliveries and all(d.status in {"succeeded", "failed"} for d in deliveries):
                return
            await asyncio.sleep(0.02)


async def make_events_gateway(
    make_gateway: MakeGateway,
    *,
    resolver: AbstractResolver | None = None,
    store_url: str | None = None,
    **events: Any,
) -> Gateway:
    gateway: Gateway = await make_gateway(
        events={"jitter": 0, "poll_interval": 0.02, **events},
        resolver=resolver,
        store_url=store_url,
    )
    return gateway


async def only_event_id(gateway: Gateway) -> str:
    listed = await gateway.client.get("/v1/events", headers=gateway.auth())
    [event] = (await listed.json())["items"]
    return str(event["id"])
