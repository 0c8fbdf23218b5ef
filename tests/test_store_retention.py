"""Retention of rows: what the store forgets, on both stores (events past the window with their
deliveries and attempts, idempotency records, recoveries, a deleted subscription's deliveries),
one replica purging at a time, and the gateway's background purge and its settings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from gateway.store.opening import open_store
from gateway.store.postgres_purge import PURGE_LOCK
from gateway.store.protocol import Store
from gateway.store.records import Attempt, AttemptOutcome
from gateway.store.retention import DELETED_GRACE
from tests.conftest import MakeGateway
from tests.store_fill import fill
from tests.store_records import DAY, MONTH, event, subscription
from tests.test_recovery_store import failed_history
from tests.test_settings_cli import problems_of


async def count(url: str, table: str) -> int:
    if url.startswith("sqlite:"):
        import sqlite3

        with sqlite3.connect(url.partition("://")[2][1:]) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608
    finally:
        await conn.close()


async def test_events_past_the_window_go_with_their_deliveries_and_attempts(
    store: Store, store_url: str
) -> None:
    """1,000 events received over 60 days, 30 kept: a round in batches of 64 deletes the older
    half with their 5 deliveries and ~5 attempts each, keeps the rest whole, and reports the
    oldest event kept as ~30 days old."""
    now = time.time()
    await fill(store_url, 1000, start=now - 2 * MONTH, spacing=2 * MONTH / 1000)
    attempts_before = await count(store_url, "attempts")
    purged = await store.purge(now=now, keep_events=MONTH, batch=64)
    assert purged is not None
    assert purged.events == 500
    assert purged.deliveries == 2500
    assert await count(store_url, "events") == 500
    assert await count(store_url, "deliveries") == 2500
    assert await count(store_url, "attempts") == attempts_before - purged.attempts
    assert purged.oldest_event is not None
    assert MONTH - DAY < now - purged.oldest_event <= MONTH
    assert await store.purge(now=now, keep_events=MONTH, batch=64) == purged.__class__(
        0, 0, 0, 0, purged.oldest_event
    )


async def test_an_event_still_being_delivered_is_kept_until_its_delivery_ends(
    store: Store,
) -> None:
    """An old event whose delivery is pending, then delivering, survives every round; once the
    delivery has ended, the next round takes it (and its attempt)."""
    await store.create_subscription(subscription("s1"))
    stored = event()
    await store.record_event(stored, dedupe_window=60)
    later = time.time() + 2 * MONTH
    purged = await store.purge(now=later, keep_events=MONTH, batch=10)
    assert purged is not None
    assert purged.events == 0
    [claimed] = await store.claim_deliveries(
        owner="w", now=time.time(), lease=30, limit=1, exclude=()
    )
    assert (await store.purge(now=later, keep_events=MONTH, batch=10) or purged).events == 0
    attempt = Attempt(1, "2026-01-01T00:00:00Z", 204, 2.0, None, None)
    done = AttemptOutcome(claimed.delivery.id, "s1", attempt, "succeeded", None, True)
    await store.complete_attempts([done], now=time.time())
    purged = await store.purge(now=later, keep_events=MONTH, batch=10)
    assert purged is not None
    assert (purged.events, purged.deliveries, purged.attempts) == (1, 1, 1)
    assert await store.get_event("t1", stored.id) is None


async def test_idempotency_records_go_once_past_their_ttl(store: Store) -> None:
    """A finished record is purged once its TTL has passed; a live one and a running claim
    within its lease stay."""
    await store.begin_idempotent("t1", "old", operation="op", fingerprint="f", lease=30)
    await store.finish_idempotent("t1", "old", status=201, headers={}, body=b"{}", ttl=60)
    await store.begin_idempotent("t1", "live", operation="op", fingerprint="f", lease=30)
    await store.finish_idempotent("t1", "live", status=201, headers={}, body=b"{}", ttl=DAY)
    await store.begin_idempotent("t1", "running", operation="op", fingerprint="f", lease=600)
    purged = await store.purge(now=time.time() + 120, keep_events=None, batch=1)
    assert purged is not None
    assert purged.idempotency_keys == 1
    assert await store.get_idempotent("t1", "live") is not None
    assert await store.get_idempotent("t1", "running") is not None


async def test_finished_recoveries_go_a_week_after_they_ended(store: Store) -> None:
    """A recovery that finished 8 days ago is purged; one that finished yesterday and one still
    running (started a month ago) stay readable. Before, finished recoveries stayed forever."""
    subscription = await failed_history(store, 1, tenant="t1")
    now = time.time()

    async def finished(at: float) -> str:
        started = await store.start_recovery("t1", subscription, since=0, until=now, now=at)
        assert started is not None
        assert await store.claim_recovery(owner="w", now=at, lease=60) is not None
        done = await store.recover_step(started[0].id, owner="w", now=at, lease=60, batch=100)
        assert done is not None
        assert done.status == "done"
        return done.id

    old, recent = await finished(now - 8 * DAY), await finished(now - DAY)
    running = await store.start_recovery("t1", subscription, since=0, until=now, now=now - MONTH)
    assert running is not None
    purged = await store.purge(now=now, keep_events=None, batch=1)
    assert purged is not None
    assert purged.recoveries == 1
    assert purged.by_table()["recoveries"] == 1
    assert await store.get_recovery("t1", subscription, old) is None
    assert await store.get_recovery("t1", subscription, recent) is not None
    assert await store.get_recovery("t1", subscription, running[0].id) is not None


async def test_deleting_a_subscription_removes_what_only_it_referenced(store: Store) -> None:
    """A deleted subscription's deliveries and attempts go at the first round after the grace
    (an attempt in flight has ended by then), in batches; the event and the other subscription's
    delivery stay."""
    await store.create_subscription(subscription("s1"))
    await store.create_subscription(subscription("s2"))
    stored = [event() for _ in range(3)]
    for e in stored:
        await store.record_event(e, dedupe_window=60)
    claimed = await store.claim_deliveries(
        owner="w", now=time.time(), lease=30, limit=10, exclude=()
    )
    attempt = Attempt(1, "2026-01-01T00:00:00Z", 204, 2.0, None, None)
    await store.complete_attempts(
        [
            AttemptOutcome(c.delivery.id, c.subscription.id, attempt, "succeeded", None, True)
            for c in claimed
        ],
        now=time.time(),
    )
    assert await store.delete_subscription("t1", "s1")
    early = await store.purge(now=time.time(), keep_events=None, batch=2)
    assert early is not None
    assert early.deliveries == 0
    purged = await store.purge(now=time.time() + DELETED_GRACE + 1, keep_events=None, batch=2)
    assert purged is not None
    assert (purged.deliveries, purged.attempts, purged.events) == (3, 3, 0)
    for e in stored:
        assert [d.subscription_id for d in await store.list_deliveries("t1", e.id)] == ["s2"]


async def test_one_replica_purges_at_a_time(pg_url: str) -> None:
    """On PostgreSQL, while another process holds the purge lock, a round is skipped (None)
    and deletes nothing; once the lock is free, rounds run again."""
    store = open_store(pg_url)
    await store.open()
    holder = await asyncpg.connect(pg_url)
    try:
        await store.begin_idempotent("t1", "k", operation="op", fingerprint="f", lease=1)
        await holder.execute("SELECT pg_advisory_lock($1)", PURGE_LOCK)
        assert await store.purge(now=time.time() + 60, keep_events=MONTH, batch=10) is None
        await holder.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
        purged = await store.purge(now=time.time() + 60, keep_events=MONTH, batch=10)
        assert purged is not None
        assert purged.idempotency_keys == 1
    finally:
        await holder.close()
        await store.close()


async def test_the_gateway_forgets_events_past_the_retention_window(
    make_gateway: MakeGateway, store_url: str
) -> None:
    """A gateway started with default settings over 60 days of history purges the events older
    than 30 days in the background (nothing was ever deleted before), and its metrics say so:
    rows purged by table, the age of the oldest event kept."""
    migrated = open_store(store_url)
    await migrated.open()
    await migrated.close()
    now = time.time()
    await fill(store_url, 600, start=now - 2 * MONTH, spacing=2 * MONTH / 600)
    gateway = await make_gateway(store_url=store_url)

    deadline = time.monotonic() + 20
    metrics: dict[str, Any] = {}
    # The newest 300 are within 30 days; the metrics are written once the round has ended, a few
    # transactions after the events went.
    while (
        await count(store_url, "events") > 301
        or 'gateway_store_purged_rows_total{table="events"}' not in metrics
    ):
        assert time.monotonic() < deadline, "the events past the window are still there"
        await asyncio.sleep(0.05)
        text = await (await gateway.client.get("/metrics")).text()
        metrics = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("gateway_store_")
        }
    assert metrics['gateway_store_purged_rows_total{table="events"}'] >= 299
    assert metrics['gateway_store_purged_rows_total{table="deliveries"}'] >= 1495
    assert 0 < metrics["gateway_store_oldest_event_age_seconds"] <= MONTH


def test_retention_settings_are_checked_by_path() -> None:
    """A negative window, a zero batch and a window shorter than the dedupe window (a repeated
    callback would be delivered again) are named by their path."""
    found = problems_of({"store": {"retention": {"events": -1, "batch": 0, "interval": 0}}})
    assert "store.retention.events: must be at least 0" in found
    assert "store.retention.batch: must be at least 1" in found
    assert "store.retention.interval: must be more than 0" in found
    found = problems_of({"store": {"retention": {"events": 3600.0}}})
    assert found == (
        "store.retention.events: must be at least events.dedupe_window (86400 s),"
        " or 0 to keep events forever",
    )
    assert problems_of({"store": {"retention": {"event": 1}}})[0].startswith(
        "store.retention.event: unknown setting; did you mean events?"
    )
