"""One tenant cannot starve another: a share of the delivery slots each, and a cap on how many
subscriptions a tenant keeps. The real app on each store, real subscribers on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import CALLER_KEY_B, REPORTS, Gateway, MakeGateway, eventually
from tests.subscribers import callback, make_events_gateway, subscribe


@attrs.define
class Endpoints:
    """Subscribers on one server: `/hang/...` answers only when released, `/fast` at once and
    notes when each request arrived."""

    server: TestServer
    hanging: int = 0
    arrived: list[float] = attrs.field(factory=list)
    release: asyncio.Event = attrs.field(factory=asyncio.Event)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def endpoints(aiohttp_server: Any) -> Endpoints:
    state = Endpoints(server=None)  # type: ignore[arg-type]

    async def hang(_: web.Request) -> web.Response:
        state.hanging += 1
        await state.release.wait()
        return web.Response(status=204)

    async def fast(_: web.Request) -> web.Response:
        state.arrived.append(time.perf_counter())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hang/{n}", hang)
    app.router.add_post("/fast", fast)
    state.server = await aiohttp_server(app)
    return state


async def test_a_tenant_with_hanging_subscribers_cannot_starve_another(
    make_gateway: MakeGateway, endpoints: Endpoints, store_url: str
) -> None:
    """Tenant A's four subscribers never answer: A's deliveries fill its share of the process's
    16 slots (8 at tenant_share 0.5), not all 16, and tenant B's test event starts within
    100 ms of being due."""
    gateway = await make_events_gateway(
        make_gateway,
        store_url=store_url,
        concurrency=16,
        per_subscription=4,
        attempt_timeout=30,
        poll_interval=1.0,
    )
    try:
        for n in range(4):
            await subscribe(gateway, endpoints.url(f"/hang/{n}"), ["*"])
        for n in range(6):
            await callback(gateway, f"flood/{n}")
        await eventually(lambda: endpoints.hanging >= 8)
        await asyncio.sleep(0.2)
        assert endpoints.hanging == 8  # A's share; its other 16 deliveries wait

        other = await subscribe(gateway, endpoints.url("/fast"), ["*"], key=CALLER_KEY_B)
        started = time.perf_counter()
        sent = await gateway.client.post(
            f"/v1/subscriptions/{other['id']}/test", headers=gateway.auth(CALLER_KEY_B)
        )
        assert sent.status == 202
        due = time.perf_counter()  # the 202 comes once the event and its delivery are stored
        await eventually(lambda: bool(endpoints.arrived), within=5)
        waited = endpoints.arrived[0] - due
        REPORTS.append(
            f"fairness ({store_url.partition(':')[0]}): tenant B's test event reached its"
            f" subscriber {waited * 1000:.0f} ms after it was due (the request storing it took"
            f" {(due - started) * 1000:.0f} ms), A holding 8 of 16 slots"
        )
        assert waited < 0.1
    finally:
        endpoints.release.set()


async def test_subscriptions_per_tenant_are_capped(
    make_gateway: MakeGateway, endpoints: Endpoints
) -> None:
    """Past [events] max_subscriptions_per_tenant a create is a 422 problem saying the limit;
    other tenants are not affected, and deleting one makes room again."""
    gateway: Gateway = await make_events_gateway(make_gateway, max_subscriptions_per_tenant=2)
    first = await subscribe(gateway, endpoints.url("/fast"), ["*"])
    await subscribe(gateway, endpoints.url("/fast"), ["*"])
    refused = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": endpoints.url("/fast"), "eventTypes": ["*"]},
        headers=gateway.auth(),
    )
    assert refused.status == 422
    problem = await refused.json()
    assert problem["type"] == "urn:gateway:problem:validation-failed"
    assert problem["maxSubscriptions"] == 2
    assert "max_subscriptions_per_tenant" in problem["detail"]
    await subscribe(gateway, endpoints.url("/fast"), ["*"], key=CALLER_KEY_B)
    deleted = await gateway.client.delete(
        f"/v1/subscriptions/{first['id']}", headers=gateway.auth()
    )
    assert deleted.status == 204
    await subscribe(gateway, endpoints.url("/fast"), ["*"])
