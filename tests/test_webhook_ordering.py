"""Ordered delivery per key (issue 18): a subscription with `orderBy: "resource"` gets the events
about one resource one at a time, in the order they were recorded; a failing event holds back only
its own key. The real app on each store with real subscribers on loopback, and a real gateway
process killed with SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import collections
import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.state import EVENTS, STORE
from gateway.store.opening import open_store
from gateway.store.protocol import Store
from gateway.values import Event
from tests.conftest import REPORTS, Gateway, MakeGateway, eventually
from tests.subscribers import make_events_gateway
from tests.test_replicas import AUTH, replica, succeeded_attempts, write_config

TENANT = "tenant-a"


@attrs.define
class Keyed:
    """A subscriber that notes, per product, the order events arrived in (their `n`), whether two
    of one product were ever in flight at once, and answers 500 to the first tries of chosen
    events (`fail`: event n of a product, how many times)."""

    server: TestServer
    order: dict[str, list[int]] = attrs.field(factory=dict)
    in_flight: collections.Counter[str] = attrs.field(factory=collections.Counter)
    overlaps: int = 0
    fail: dict[tuple[str, int], int] = attrs.field(factory=dict)
    attempts: list[tuple[str, int, int]] = attrs.field(factory=list)  # (product, n, status)
    delay: float = 0.01

    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def delivered(self) -> int:
        return sum(len(got) for got in self.order.values())


@pytest.fixture
async def keyed(aiohttp_server: Any) -> Keyed:
    state = Keyed(server=None)  # type: ignore[arg-type]

    async def handle(request: web.Request) -> web.Response:
        data = (await request.json())["data"]
        product, n = data["productId"], data["n"]
        state.in_flight[product] += 1
        if state.in_flight[product] > 1:
            state.overlaps += 1
        try:
            await asyncio.sleep(random.uniform(0, state.delay))
            if state.fail.get((product, n), 0) > 0:
                state.fail[product, n] -= 1
                state.attempts.append((product, n, 500))
                return web.Response(status=500)
            state.attempts.append((product, n, 204))
            state.order.setdefault(product, []).append(n)
            return web.Response(status=204)
        finally:
            state.in_flight[product] -= 1

    app = web.Application()
    app.router.add_post("/hook", handle)
    state.server = await aiohttp_server(app)
    return state


def product_event(product: str, n: int) -> Event:
    return Event.new("acme.done", {"productId": product, "n": n}, tenant=TENANT, backend="acme")


async def publish(store: Store, product: str, count: int) -> None:
    """`count` events about `product`, one after another (n = 0, 1, ...)."""
    for n in range(count):
        assert await store.record_event(product_event(product, n), dedupe_window=0)


async def ordered_subscription(
    gateway: Gateway, url: str, order_by: str | None, **fields: Any
) -> Any:
    body = {"url": url, "eventTypes": ["*"], "orderBy": order_by, **fields}
    response = await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth())
    assert response.status == 201, await response.text()
    return await response.json()


async def test_events_of_one_product_arrive_one_at_a_time_in_order(
    make_gateway: MakeGateway, keyed: Keyed, store_url: str
) -> None:
    """12 products, 8 events each, published concurrently (each product's one after another),
    to a subscription ordered by resource with 8 deliveries in flight and a subscriber taking a
    random time: each product's events arrive in the order recorded, never two at once."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url, per_subscription=8)
    created = await ordered_subscription(gateway, keyed.url(), "resource")
    assert created["orderBy"] == "resource"
    app = gateway.client.app
    products, count = [f"prd_{k}" for k in range(12)], 8

    async def publish_and_wake(product: str) -> None:
        await publish(app[STORE], product, count)
        app[EVENTS].wake()

    await asyncio.gather(*(publish_and_wake(p) for p in products))
    await eventually(lambda: keyed.delivered() == len(products) * count, within=20)
    assert keyed.overlaps == 0
    assert all(keyed.order[p] == list(range(count)) for p in products), keyed.order
    REPORTS.append(
        f"ordering ({store_url.partition(':')[0]}): {len(products)} products x {count} events,"
        " 8 in flight: every product's in order, none two at once"
    )


async def test_an_unordered_subscription_does_overlap(
    make_gateway: MakeGateway, keyed: Keyed
) -> None:
    """The same events to a subscription without orderBy do go out together (what the ordered
    test would see without ordering: it can fail)."""
    gateway = await make_events_gateway(make_gateway, per_subscription=8)
    created = await ordered_subscription(gateway, keyed.url(), None)
    assert created["orderBy"] is None
    keyed.delay = 0.05
    await publish(gateway.client.app[STORE], "prd_x", 8)
    gateway.client.app[EVENTS].wake()
    await eventually(lambda: keyed.delivered() == 8, within=10)
    assert keyed.overlaps > 0


async def test_order_by_is_checked_and_changed(make_gateway: MakeGateway, keyed: Keyed) -> None:
    """orderBy other than "resource" or null is a 422 problem naming /orderBy that stores
    nothing; PATCH keeps it when absent and removes it with null."""
    gateway = await make_events_gateway(make_gateway)
    for wrong in ("seq", 1, ""):
        body = {"url": keyed.url(), "eventTypes": ["*"], "orderBy": wrong}
        refused = await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth())
        assert refused.status == 422
        assert (await refused.json())["errors"][0]["location"] == "/orderBy"
    listed = await (await gateway.client.get("/v1/subscriptions", headers=gateway.auth())).json()
    assert listed["items"] == []
    created = await ordered_subscription(gateway, keyed.url(), "resource")
    url = f"/v1/subscriptions/{created['id']}"
    kept = await gateway.client.patch(url, json={"enabled": True}, headers=gateway.auth())
    assert (await kept.json())["orderBy"] == "resource"
    removed = await gateway.client.patch(url, json={"orderBy": None}, headers=gateway.auth())
    assert (await removed.json())["orderBy"] is None


@pytest.mark.parametrize("filtered", [False, True])
async def test_a_failing_event_holds_back_only_its_own_product(
    make_gateway: MakeGateway, keyed: Keyed, store_url: str, filtered: bool
) -> None:
    """Product A's first event fails twice, then succeeds: A's second event arrives only after
    it, while product B's events flow meanwhile; the same for a subscription with a filter
    (its deliveries are queued apart from the others')."""
    gateway = await make_events_gateway(
        make_gateway, store_url=store_url, retry_schedule=[0, 0.3, 0.3, 0.3]
    )
    fields = {"filter": "data.n != `99`"} if filtered else {}
    await ordered_subscription(gateway, keyed.url(), "resource", **fields)
    keyed.fail[("prd_a", 0)] = 2
    store = gateway.client.app[STORE]
    await publish(store, "prd_a", 2)
    await publish(store, "prd_b", 3)
    gateway.client.app[EVENTS].wake()
    await eventually(lambda: keyed.delivered() == 5, within=10)
    a = [(n, status) for product, n, status in keyed.attempts if product == "prd_a"]
    assert a == [(0, 500), (0, 500), (0, 204), (1, 204)]
    first_a_success = keyed.attempts.index(("prd_a", 0, 204))
    b_done = max(i for i, (product, _, _) in enumerate(keyed.attempts) if product == "prd_b")
    assert b_done < first_a_success  # B did not wait for A's retries
    assert keyed.order["prd_b"] == [0, 1, 2]


@pytest.mark.timeout(120)
async def test_order_holds_across_a_sigkill(tmp_path: Path, keyed: Keyed, store_url: str) -> None:
    """A gateway process delivering to an ordered subscription is killed with SIGKILL
    mid-stream and started again: every product's events still arrive in order, none lost; a
    lease the dead process held goes out again (at least once), before the events after it."""
    config = write_config(tmp_path / "gateway.toml", lease=1.0, poll_interval=0.1)
    products, count = [f"prd_{k}" for k in range(6)], 10
    keyed.delay = 0.03
    store = open_store(store_url)
    try:
        async with replica(config, store_url) as (base, victim):
            await store.open()  # once the process has migrated the database
            async with aiohttp.ClientSession() as http:
                body = {"url": keyed.url(), "eventTypes": ["*"], "orderBy": "resource"}
                async with http.post(f"{base}/v1/subscriptions", json=body, headers=AUTH) as made:
                    assert made.status == 201, await made.text()
            await asyncio.gather(*(publish(store, p, count) for p in products))
            await eventually(lambda: keyed.delivered() >= 15, within=20)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
        at_kill = keyed.delivered()
        assert at_kill < len(products) * count, "the kill came too late to prove anything"
        async with replica(config, store_url):
            await eventually(
                lambda: all(len(set(keyed.order.get(p, []))) == count for p in products),
                within=30,
            )
    finally:
        await store.close()
    assert keyed.overlaps == 0
    for p in products:
        got = keyed.order[p]
        # Resent after the kill (at least once), then on in order: never one before an earlier.
        assert [n for i, n in enumerate(got) if n not in got[:i]] == list(range(count)), got
        assert got == sorted(got), got
    REPORTS.append(
        f"ordering SIGKILL ({store_url.partition(':')[0]}): {len(products)} products x {count}"
        f" events, killed after {at_kill} deliveries; all in order after the restart"
    )


@pytest.mark.timeout(120)
async def test_two_processes_keep_one_order(tmp_path: Path, keyed: Keyed, pg_url: str) -> None:
    """Two gateway processes on one PostgreSQL database claim the deliveries of an ordered
    subscription together: both send some, each product's events still arrive in order and never
    two at once (neither process takes a product's next event while the other sends its head)."""
    config = write_config(tmp_path / "gateway.toml", lease=30.0, poll_interval=0.02)
    products, count = [f"prd_{k}" for k in range(10)], 10
    store = open_store(pg_url)
    try:
        async with replica(config, pg_url) as (a, _), replica(config, pg_url) as (b, _):
            await store.open()
            async with aiohttp.ClientSession() as http:
                body = {"url": keyed.url(), "eventTypes": ["*"], "orderBy": "resource"}
                async with http.post(f"{a}/v1/subscriptions", json=body, headers=AUTH) as made:
                    assert made.status == 201, await made.text()
            await asyncio.gather(*(publish(store, p, count) for p in products))
            await eventually(lambda: keyed.delivered() == len(products) * count, within=30)
            by_a, by_b = await succeeded_attempts(a), await succeeded_attempts(b)
    finally:
        await store.close()
    assert by_a > 0, (by_a, by_b)
    assert by_b > 0, (by_a, by_b)
    assert keyed.overlaps == 0
    assert all(keyed.order[p] == list(range(count)) for p in products), keyed.order
    REPORTS.append(
        f"ordering across 2 processes (postgresql): {len(products)} products x {count} events,"
        f" {by_a:.0f} sent by one process and {by_b:.0f} by the other, all in order"
    )
