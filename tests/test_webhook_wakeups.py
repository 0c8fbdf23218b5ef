"""When the delivery worker claims: as soon as something it can send is due, never by waiting for
the poll interval (an hour here), and no more often than that (each claim is a write transaction,
on SQLite one the events' writes queue behind). The real app on each store, real subscribers on
loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.state import EVENTS, STORE
from gateway.store.records import ClaimedDelivery
from gateway.values import Event
from tests.conftest import REPORTS, MakeGateway, eventually
from tests.subscribers import (
    Receiver,
    callback,
    make_events_gateway,
    receiver,
    subscribe,
)
from tests.test_webhook_ordering import Keyed, keyed, ordered_subscription, publish

__all__ = ["keyed", "receiver"]  # fixtures

HOUR = 3600.0


def count_claims(store: Any) -> list[int]:
    """Wrap the store's `claim_deliveries` (the worker's only way to claim): the number of
    deliveries each claim returned, in order."""
    claims: list[int] = []
    claim: Callable[..., Awaitable[Sequence[ClaimedDelivery]]] = store.claim_deliveries

    async def counted(**kwargs: Any) -> Sequence[ClaimedDelivery]:
        found = await claim(**kwargs)
        claims.append(len(found))
        return found

    store.claim_deliveries = counted
    return claims


def both_got(receiver: Receiver, count: int) -> Callable[[], bool]:
    return lambda: all(len(receiver.bodies(name)) == count for name in ("a", "b"))


async def test_events_arriving_one_by_one_cost_one_claim_each(
    make_gateway: MakeGateway, receiver: Receiver, store_url: str
) -> None:
    """Callbacks one at a time, each awaited until both its subscribers got it, with the poll an
    hour away: every event goes out at once, and its two deliveries are claimed by one claim,
    with no other claim (after a claim that took fewer than it could, there is nothing more to
    look for until a new event, or an attempt that ends, frees something)."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url, poll_interval=HOUR)
    for name in ("a", "b"):
        await subscribe(gateway, receiver.url(name), ["*"])
    claims = count_claims(gateway.client.app[STORE])
    events = 20
    started = time.monotonic()
    for n in range(events):
        await callback(gateway, f"trickle/{n}")
        await eventually(both_got(receiver, n + 1), within=10)
    took = time.monotonic() - started
    assert took < 10  # nothing waited for the poll
    assert sum(claims) == 2 * events
    # One more at most: PostgreSQL's listener wakes the worker once it has connected.
    assert [n for n in claims if n] == [2] * events, claims
    assert len(claims) <= events + 1, claims
    REPORTS.append(
        f"wake-ups ({store_url.partition(':')[0]}): {events} events one by one, 2 subscribers,"
        f" poll an hour: {len(claims)} claims, {took / events * 1000:.0f} ms an event"
    )


async def test_a_backlog_over_a_tenants_share_drains_without_waiting_for_the_poll(
    make_gateway: MakeGateway, receiver: Receiver, store_url: str
) -> None:
    """30 events queued at once to one subscription, 4 deliveries in flight at most and a
    tenant's share of 2 of them, the poll an hour away: each claim takes only the tenant's room
    (fewer than the worker could take), and each attempt that ends lets the next one go."""
    gateway = await make_events_gateway(
        make_gateway, store_url=store_url, poll_interval=HOUR, concurrency=4, tenant_share=0.5
    )
    await subscribe(gateway, receiver.url("a"), ["*"])
    app = gateway.client.app
    count = 30
    for n in range(count):
        event = Event.new("acme.done", {"n": n}, tenant="tenant-a", backend="acme")
        assert await app[STORE].record_event(event, dedupe_window=0)
    started = time.monotonic()
    app[EVENTS].wake()
    await eventually(lambda: len(receiver.bodies("a")) == count, within=10)
    REPORTS.append(
        f"wake-ups ({store_url.partition(':')[0]}): {count} events queued, a tenant's share of"
        f" 2, poll an hour: all sent in {time.monotonic() - started:.2f} s"
    )


async def test_an_ordered_keys_next_event_goes_out_when_the_previous_one_is_recorded(
    make_gateway: MakeGateway, keyed: Keyed, store_url: str
) -> None:
    """Events about one product to a subscription ordered by resource, the poll an hour away:
    each one after the first is held until the one before it is recorded as delivered, and then
    sent at once (the worker looks again once that outcome is written), not at the next poll."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url, poll_interval=HOUR)
    await ordered_subscription(gateway, keyed.url(), "resource")
    app = gateway.client.app
    count = 5
    started = time.monotonic()
    await publish(app[STORE], "prd_wake", count)
    app[EVENTS].wake()
    await eventually(lambda: keyed.delivered() == count, within=10)
    assert keyed.order["prd_wake"] == list(range(count))
    REPORTS.append(
        f"wake-ups ({store_url.partition(':')[0]}): {count} ordered events of one product,"
        f" poll an hour, all sent in {time.monotonic() - started:.2f} s"
    )


async def test_a_claim_queued_behind_an_events_write_takes_its_deliveries(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """On SQLite (one writer: writes run in the order they were asked for) a claim asked for
    while an event's write is still queued runs after it, by the clock of that moment, and takes
    the deliveries it queued: so the worker, woken before the write, claims an event's
    deliveries in the event's own transaction or the next, never a round trip later."""
    gateway = await make_events_gateway(make_gateway, poll_interval=HOUR)
    store = gateway.client.app[STORE]
    assert store.writes_in_order
    await subscribe(gateway, receiver.url("a"), ["*"])
    event = Event.new("acme.done", {"n": 1}, tenant="tenant-a", backend="acme")
    recorded, claimed = await asyncio.gather(
        store.record_event(event, dedupe_window=0),
        store.claim_deliveries(owner="test", lease=30, limit=10, exclude=()),
    )
    assert recorded
    assert [item.event.id for item in claimed] == [event.id]
