"""Retention: what the store forgets, on both stores, and the gateway's background purge."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from gateway.config_loading import load_settings
from gateway.metrics import StoreMetrics
from gateway.state import STORE
from gateway.store import Attempt, AttemptOutcome, PayloadPurged, Store
from gateway.store.opening import open_store
from gateway.store.postgres_purge import PURGE_LOCK
from gateway.store.retention import DELETED_GRACE, Purger, RetentionPolicy
from tests.conftest import MakeGateway
from tests.store_fill import fill
from tests.test_recovery_store import failed_history
from tests.test_settings_cli import problems_of
from tests.test_store import event, subscription

DAY = 86400.0
MONTH = 30 * DAY


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


async def mark(url: str) -> int | None:
    """Where the payload purge resumes (`retention_marks`)."""
    query = "SELECT seq FROM retention_marks WHERE name = 'payloads'"
    if url.startswith("sqlite:"):
        import sqlite3

        with sqlite3.connect(url.partition("://")[2][1:]) as db:
            row = db.execute(query).fetchone()
            return None if row is None else int(row[0])
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_payloads_past_their_window_are_blanked_and_their_events_still_list(
    store: Store, store_url: str
) -> None:
    """100 events over 10 days, payloads kept 5: the purger's round (batches of 7) blanks the
    older half's payloads and counts them in its metrics; those events still list and read with
    their metadata and deliveries, `payload_purged` and no data; the newer half is whole. The
    next round resumes after the last one blanked and finds nothing to do."""
    now = time.time()
    await fill(store_url, 100, start=now - 10 * DAY, spacing=DAY / 10)
    registry = CollectorRegistry()
    policy = RetentionPolicy(keep_events=MONTH, batch=7, interval=60, keep_payloads=5 * DAY)
    purger = Purger(store, policy, StoreMetrics(registry))
    purged = await purger.run_once(now=now)
    assert purged is not None
    assert (purged.payloads, purged.events, purged.deliveries) == (50, 0, 0)
    assert registry.get_sample_value("gateway_store_purged_rows_total", {"table": "payloads"}) == 50
    listed = [
        e
        for tenant in ("t1", "t2")
        for e in (await store.list_events(tenant, event_type=None, after=None, limit=100)).items
    ]
    assert len(listed) == 100
    old = {f"evt_{n:010d}" for n in range(50)}
    for e in listed:
        assert e.payload_purged == (e.id in old)
        assert (e.data == {}) == (e.id in old)
        assert e.type
        assert e.occurred_at
    gone = await store.get_event("t1", "evt_0000000010")
    assert gone is not None
    assert gone.payload_purged
    assert gone.data == {}
    assert len(await store.list_deliveries("t1", "evt_0000000010")) == 5
    kept = await store.get_event("t1", "evt_0000000060")
    assert kept is not None
    assert not kept.payload_purged
    assert kept.data["n"] == 60
    at = await mark(store_url)
    assert at == 50  # the seq of the last event blanked (evt_0000000049)
    assert (await purger.run_once(now=now) or purged).payloads == 0
    assert await mark(store_url) == at


async def test_an_event_being_delivered_keeps_its_payload_until_its_delivery_ends(
    store: Store,
) -> None:
    """Two old events, the first with no subscription to go to, the second still being
    delivered: a round blanks the first only; once the delivery has ended the next round goes
    back for the second (its mark stayed before it)."""
    quiet = event()
    await store.record_event(quiet, dedupe_window=60)
    await store.create_subscription(subscription("s1"))
    busy = event()
    await store.record_event(busy, dedupe_window=60)
    later = time.time() + 2 * DAY
    purged = await store.purge(now=later, keep_events=None, batch=10, keep_payloads=DAY)
    assert purged is not None
    assert purged.payloads == 1
    first, second = await store.get_event("t1", quiet.id), await store.get_event("t1", busy.id)
    assert first is not None
    assert first.payload_purged
    assert second is not None
    assert second.data == {"n": 1}
    [claimed] = await store.claim_deliveries(
        owner="w", now=time.time(), lease=30, limit=1, exclude=()
    )
    purged = await store.purge(now=later, keep_events=None, batch=10, keep_payloads=DAY)
    assert purged is not None
    assert purged.payloads == 0
    attempt = Attempt(1, "2026-01-01T00:00:00Z", 204, 2.0, None, None)
    done = AttemptOutcome(claimed.delivery.id, "s1", attempt, "succeeded", None, True)
    await store.complete_attempts([done], now=time.time())
    purged = await store.purge(now=later, keep_events=None, batch=10, keep_payloads=DAY)
    assert purged is not None
    assert purged.payloads == 1
    second = await store.get_event("t1", busy.id)
    assert second is not None
    assert second.payload_purged
    with pytest.raises(PayloadPurged):
        await store.redeliver("t1", busy.id, None)
    assert len(await store.list_deliveries("t1", busy.id)) == 1  # nothing queued


async def test_an_event_without_its_payload_lists_and_refuses_redelivery(
    make_gateway: MakeGateway, store_url: str
) -> None:
    """Through the API (every answer contract-checked): an event whose payload was purged is
    listed and read without `data` and with `payloadPurged: true`; redelivering it is a 409
    problem naming why, and queues nothing; an event with its payload is unchanged."""
    gateway = await make_gateway(store_url=store_url)
    store = gateway.client.app[STORE]
    old, new = event(tenant="tenant-a"), event(tenant="tenant-a")
    await store.record_event(old, dedupe_window=60)
    purged = None
    while purged is None:  # None while the gateway's own round holds the purge (PostgreSQL)
        purged = await store.purge(now=time.time() + 2, keep_events=None, batch=10, keep_payloads=1)
        await asyncio.sleep(0.01)
    assert purged.payloads == 1
    await store.record_event(new, dedupe_window=60)
    listed = await gateway.client.get("/v1/events", headers=gateway.auth())
    assert listed.status == 200
    items = {item["id"]: item for item in (await listed.json())["items"]}
    assert items[old.id]["payloadPurged"] is True
    assert "data" not in items[old.id]
    assert items[new.id]["data"] == {"n": 1}
    assert "payloadPurged" not in items[new.id]
    got = await gateway.client.get(f"/v1/events/{old.id}", headers=gateway.auth())
    assert got.status == 200
    body = await got.json()
    assert body["payloadPurged"] is True
    assert "data" not in body
    assert body["type"] == "acme.done"
    refused = await gateway.client.post(f"/v1/events/{old.id}/redeliver", headers=gateway.auth())
    assert refused.status == 409
    problem = await refused.json()
    assert problem["type"].endswith("payload-purged")
    assert old.id in problem["detail"]
    assert "retention" in problem["detail"]
    assert await store.list_deliveries("tenant-a", old.id) == []


def test_payload_retention_is_checked_by_path() -> None:
    """A payload window of 0 or longer than the events' is named by its path; one within it, or
    with events kept forever, is accepted."""
    found = problems_of({"store": {"retention": {"payloads": 0}}})
    assert found == ("store.retention.payloads: must be more than 0",)
    found = problems_of({"store": {"retention": {"events": 2 * DAY, "payloads": 3 * DAY}}})
    assert found == (
        "store.retention.payloads: must be at most store.retention.events (172800 s): a payload"
        " goes with its event at the latest",
    )
    within = load_settings({"store": {"retention": {"events": 2 * DAY, "payloads": DAY}}})
    assert within.store.retention.payloads == DAY
    forever = load_settings({"store": {"retention": {"events": 0, "payloads": DAY}}})
    assert forever.store.retention.payloads == DAY
    assert load_settings({}).store.retention.payloads is None  # as long as the events


async def test_a_recovery_passes_over_an_event_whose_payload_is_gone(store: Store) -> None:
    """A bulk recovery queues again the failed delivery whose event kept its payload, and not the
    one whose payload the retention purged (it could only be sent without its data)."""
    await store.create_subscription(subscription("s1"))
    old, new = event(), event()
    for e in (old, new):
        await store.record_event(e, dedupe_window=60)
        [claimed] = await store.claim_deliveries(
            owner="w", now=time.time(), lease=30, limit=1, exclude=()
        )
        attempt = Attempt(1, "2026-01-01T00:00:00Z", 500, 2.0, "HTTP 500", None)
        failed = AttemptOutcome(claimed.delivery.id, "s1", attempt, "failed", None, False)
        await store.complete_attempts([failed], now=time.time())
        if e is old:
            purged = await store.purge(
                now=time.time() + 2, keep_events=None, batch=10, keep_payloads=1
            )
            assert purged is not None
            assert purged.payloads == 1
    now = time.time() + 1
    started = await store.start_recovery("t1", "s1", since=0, until=now, now=now)
    assert started is not None
    assert await store.claim_recovery(owner="r", now=now, lease=60) is not None
    done = await store.recover_step(started[0].id, owner="r", now=now, lease=60, batch=10)
    assert done is not None
    assert done.requeued == 1
    assert [d.status for d in await store.list_deliveries("t1", old.id)] == ["failed"]
    assert sorted(d.status for d in await store.list_deliveries("t1", new.id)) == [
        "failed",
        "pending",
    ]
