"""The store's recovery and query operations on both stores: a subscription's deliveries paged by
(creation time, id) through ties, recoveries in batches that queue each failed delivery once and
hold one lease at a time (across PostgreSQL replicas too), and every new read an index range that
stops at the page size, with and without statistics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs
import pytest

from gateway.store.opening import open_store
from gateway.store.protocol import Store
from gateway.store.records import Attempt, AttemptOutcome, EventFilter, Subscription
from gateway.values import Event
from tests.test_store_scale import (
    SUBSCRIPTION,
    Recorder,
    analyze,
    assert_bounded,
    filled,
    record_reads,
)

__all__ = ["filled"]  # the fixture, for this module's tests


async def failed_history(store: Store, count: int, *, tenant: str = "t") -> str:
    """A subscription of `tenant` with `count` events whose deliveries failed (claimed and given
    up, as a worker does); its id."""
    subscription = attrs.evolve(SUBSCRIPTION, id=f"sub_{tenant}", tenant=tenant)
    await store.create_subscription(subscription)
    for n in range(count):
        event = Event.new("acme.done", {"n": n}, tenant=tenant, backend="acme")
        await store.record_event(event, dedupe_window=0)
    await fail_all(store, subscription)
    return subscription.id


async def fail_all(store: Store, subscription: Subscription) -> None:
    """Every due delivery claimed and given up after one 503, as a worker records it."""
    attempt = Attempt(1, "2026-01-01T00:00:00Z", 503, 3.0, "HTTP 503", None)
    claimed = await store.claim_deliveries(
        owner="w", now=time.time() + 1, lease=30, limit=1000, exclude=[]
    )
    await store.complete_attempts(
        [
            AttemptOutcome(c.delivery.id, subscription.id, attempt, "failed", None, False)
            for c in claimed
        ],
        now=time.time(),
    )


async def test_deliveries_page_through_ties_in_creation_time(store: Store) -> None:
    """Deliveries queued in the same instant (one transaction's) page by id under the same time:
    every one is listed once, newest first, whatever the page size; by status and by time too."""
    subscription = attrs.evolve(SUBSCRIPTION, id="sub_x", tenant="t")
    await store.create_subscription(subscription)
    event = Event.new("acme.done", {}, tenant="t", backend="acme")
    await store.record_event(event, dedupe_window=0, only_subscription="sub_x")
    for _ in range(4):  # redeliveries: each its own instant
        await store.redeliver("t", event.id, "sub_x")
    everything = await store.list_subscription_deliveries(
        "t", "sub_x", status=None, since=None, until=None, after=None, limit=100
    )
    assert len(everything.items) == 5
    order = [(d.created_at, d.id) for d in everything.items]
    assert order == sorted(order, reverse=True)
    for size in (1, 2, 3):
        seen, after = [], None
        while True:
            page = await store.list_subscription_deliveries(
                "t", "sub_x", status="pending", since=None, until=None, after=after, limit=size
            )
            seen += [d.id for d in page.items]
            if page.next_position is None:
                break
            after = page.next_position
        assert seen == [d.id for d in everything.items]
    newest = everything.items[0].created_at
    bounded = await store.list_subscription_deliveries(
        "t", "sub_x", status=None, since=newest, until=newest + 1, after=None, limit=100
    )
    assert [d.id for d in bounded.items] == [everything.items[0].id]
    other = await store.list_subscription_deliveries(
        "u", "sub_x", status=None, since=None, until=None, after=None, limit=100
    )
    assert other.items == []


async def test_listed_attempts_are_the_attempts_written(store: Store) -> None:
    """A delivery's attempts, listed by event and by subscription (on PostgreSQL read with their
    page, through JSON), are exactly as written: in order, a status-less one, a fractional
    duration to the last digit, a whole one still a float."""
    subscription = attrs.evolve(SUBSCRIPTION, id="sub_a", tenant="t")
    await store.create_subscription(subscription)
    event = Event.new("acme.done", {}, tenant="t", backend="acme")
    await store.record_event(event, dedupe_window=0)
    written = [
        Attempt(1, "2026-01-01T00:00:00.125Z", None, 1234.5678901234567, "timed out", None),
        Attempt(2, "2026-01-01T00:00:01Z", 204, 3.0, None, 'a "quoted" \\ excerpt ✓'),
    ]
    for n, attempt in enumerate(written):
        [claimed] = await store.claim_deliveries(
            owner="w", now=time.time() + 60 * n, lease=30, limit=1, exclude=[]
        )
        status = "pending" if n == 0 else "succeeded"
        outcome = AttemptOutcome(claimed.delivery.id, "sub_a", attempt, status, time.time(), n == 1)
        await store.complete_attempts([outcome], now=time.time())
    [by_event] = await store.list_deliveries("t", event.id)
    page = await store.list_subscription_deliveries(
        "t", "sub_a", status=None, since=None, until=None, after=None, limit=10
    )
    assert by_event.attempt_log == tuple(written)
    assert page.items[0].attempt_log == tuple(written)
    assert all(type(a.duration_ms) is float for a in page.items[0].attempt_log)


async def test_a_recovery_requeues_in_batches_and_each_delivery_once(store: Store) -> None:
    """Batches of 2 over 5 failed deliveries: counted first, then 2, 4, 5 and done; each failed
    one names its new pending delivery; a second recovery of the range finds none left; only
    the lease's holder moves it on, and the same request while it runs gets it back."""
    subscription = await failed_history(store, 5)
    now = time.time()
    started = await store.start_recovery("t", subscription, since=0, until=now, now=now)
    assert started is not None
    recovery, created = started
    assert created
    assert recovery.status == "running"
    assert await store.start_recovery("t", subscription, since=0, until=now, now=now) == (
        recovery,
        False,
    )
    assert await store.start_recovery("other", subscription, since=0, until=now, now=now) is None
    assert await store.claim_recovery(owner="a", now=now, lease=60) is not None
    assert await store.claim_recovery(owner="b", now=now, lease=60) is None
    assert await store.recover_step(recovery.id, owner="b", now=now, lease=60, batch=2) is None
    progress = []
    current: Any = recovery
    while current.status == "running":
        current = await store.recover_step(recovery.id, owner="a", now=now, lease=60, batch=2)
        progress.append((current.requeued, current.total, current.status))
    assert progress == [(2, 5, "running"), (4, 5, "running"), (5, 5, "done")]
    page = await store.list_subscription_deliveries(
        "t", subscription, status=None, since=None, until=None, after=None, limit=100
    )
    failed = [d for d in page.items if d.status == "failed"]
    pending = {d.id: d for d in page.items if d.status == "pending"}
    assert len(failed) == len(pending) == 5
    assert {d.requeued_as for d in failed} == set(pending)
    assert {d.event_id for d in failed} == {d.event_id for d in pending.values()}
    assert await store.get_recovery("t", subscription, recovery.id) == current
    assert await store.get_recovery("u", subscription, recovery.id) is None

    second, _ = await store.start_recovery("t", subscription, since=0, until=now, now=now) or ()
    assert await store.claim_recovery(owner="a", now=now, lease=60) is not None
    current = second
    while current.status == "running":
        current = await store.recover_step(second.id, owner="a", now=now, lease=60, batch=2)
    assert (current.status, current.requeued, current.total) == ("done", 0, 0)


async def test_a_lease_that_ran_out_or_was_given_back_is_taken_by_the_next(store: Store) -> None:
    """A holder that died: its lease runs out and another takes the recovery on; one that
    stopped gives it back and another takes it at once."""
    subscription = await failed_history(store, 1)
    now = time.time()
    started = await store.start_recovery("t", subscription, since=0, until=now, now=now)
    assert started is not None
    assert await store.claim_recovery(owner="a", now=now, lease=10) is not None
    assert await store.claim_recovery(owner="b", now=now + 5, lease=10) is None
    assert await store.claim_recovery(owner="b", now=now + 11, lease=10) is not None
    await store.release_recovery(started[0].id, owner="b")
    assert await store.claim_recovery(owner="c", now=now + 12, lease=10) is not None


async def test_one_replica_holds_a_recovery_at_a_time(pg_url: str) -> None:
    """Two PostgreSQL stores (replicas) claiming at the same moment: one gets the recovery."""
    stores = [open_store(pg_url), open_store(pg_url)]
    for s in stores:
        await s.open()
    try:
        subscription = await failed_history(stores[0], 2)
        now = time.time()
        await stores[0].start_recovery("t", subscription, since=0, until=now, now=now)
        claims = await asyncio.gather(
            *(s.claim_recovery(owner=f"r{n}", now=now, lease=30) for n, s in enumerate(stores))
        )
        assert len([c for c in claims if c is not None]) == 1
    finally:
        for s in stores:
            await s.close()


async def new_reads(store: Store) -> None:
    """Each read the recovery and query operations add: listings by status, time and cursor,
    events by time, product and user, an empty tenant's, and a recovery's batches."""
    for tenant, subscription in (("t1", "sub_t1_0"), ("nobody", "sub_t1_0")):
        for status in (None, "failed"):
            page = await store.list_subscription_deliveries(
                tenant, subscription, status=status, since=None, until=None, after=None, limit=50
            )
            await store.list_subscription_deliveries(
                tenant, subscription, status=status, since=1.0, until=time.time(),
                after=page.next_position, limit=50,
            )  # fmt: skip
        for where in (
            EventFilter(since=time.time() - 3600),
            EventFilter(since=1.0, until=time.time() - 3600),
            EventFilter(product_id="p7"),
            EventFilter(user_id="u7"),
            EventFilter(product_id="p7", since=1.0, until=time.time()),
        ):
            await store.list_events(tenant, event_type=None, after=None, limit=50, where=where)
            await store.list_events(
                tenant, event_type="acme.done", after=None, limit=50, where=where
            )


@pytest.mark.parametrize("statistics", [False, True])
async def test_every_new_read_is_an_index_range_that_stops_at_the_page(
    filled: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, statistics: bool
) -> None:
    """With 20k events (100k deliveries) of history, every query behind listSubscriptionDeliveries
    and listEvents' time and resource filters plans as index searches, no table scan and no sort
    beyond the page; before and after ANALYZE."""
    if statistics:
        await analyze(store_url)
    seen = record_reads(filled, monkeypatch)
    await new_reads(filled)
    await recovery_batches(filled, monkeypatch, seen)
    # The recoveries table holds a row per recovery ever started, one here: PostgreSQL rightly
    # reads its one page rather than an index. What a batch reads of the history is checked.
    history = [read for read in seen if "FROM recoveries" not in read[0]]
    assert len(history) > 30
    await assert_bounded(store_url, history)


async def recovery_batches(store: Store, monkeypatch: pytest.MonkeyPatch, seen: list[Any]) -> None:
    """Two batches of a recovery over the whole history of a subscription (1000 failed
    deliveries), the reads of its write transactions noted in `seen` too."""
    write = store._write  # type: ignore[attr-defined]

    async def recording(op: Any, *, single: bool = False) -> Any:
        return await write(lambda db: op(Recorder(db, seen)), single=single)

    monkeypatch.setattr(store, "_write", recording)
    now = time.time()
    started = await store.start_recovery("t1", "sub_t1_0", since=0, until=now, now=now)
    assert started is not None
    assert await store.claim_recovery(owner="me", now=now, lease=60) is not None
    for _ in range(2):
        step = await store.recover_step(started[0].id, owner="me", now=now, lease=60, batch=50)
        assert step is not None
    assert (step.requeued, step.total) == (100, 1000)
