"""The store's contract for attempts' outcomes, run against every implementation: a delivery
retried or ended, its subscription's health (`failing_since`, written only when it changes),
and a disabled subscription's deliveries failed."""

from __future__ import annotations

import sqlite3
import time

import asyncpg
import pytest

from gateway.store.protocol import Store
from gateway.store.records import AttemptOutcome, SubscriptionChanges
from tests.store_records import event, subscription


async def test_outcomes_move_deliveries_on(store: Store) -> None:
    """A retry goes back to pending at its time; success and failure are final."""
    await store.create_subscription(subscription("s1"))
    stored = event()
    await store.record_event(stored, dedupe_window=60)
    now = time.time()
    [claimed] = await store.claim_deliveries(owner="a", now=now, lease=30, limit=1, exclude=())
    from gateway.store.records import Attempt

    attempt = Attempt(1, "2026-01-01T00:00:00Z", 500, 3.0, "HTTP 500", "oops")
    retry = AttemptOutcome(claimed.delivery.id, "s1", attempt, "pending", now + 5, False)
    await store.complete_attempts([retry], now=now)
    [delivery] = await store.list_deliveries("t1", stored.id)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.attempt_log[0].response_excerpt == "oops"
    sub = await store.get_subscription("t1", "s1")
    assert sub is not None
    assert sub.failing_since is not None
    assert await store.claim_deliveries(owner="a", now=now + 1, lease=30, limit=1, exclude=()) == []
    [claimed] = await store.claim_deliveries(owner="a", now=now + 6, lease=30, limit=1, exclude=())
    attempt = Attempt(2, "2026-01-01T00:00:05Z", 204, 2.0, None, None)
    done = AttemptOutcome(claimed.delivery.id, "s1", attempt, "succeeded", None, True)
    await store.complete_attempts([done], now=now + 6)
    [delivery] = await store.list_deliveries("t1", stored.id)
    assert delivery.status == "succeeded"
    assert [a.status for a in delivery.attempt_log] == [500, 204]
    sub = await store.get_subscription("t1", "s1")
    assert sub is not None
    assert sub.failing_since is None
    assert await store.queue_depth() == 0


async def _row_version(store_url: str, subscription_id: str) -> object:
    """What changes whenever the subscription's row is written: its xmin on PostgreSQL (the
    transaction that wrote the row version), on SQLite a count kept by a trigger (created on the
    first call)."""
    if store_url.startswith("sqlite:"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            db.executescript(
                "CREATE TABLE IF NOT EXISTS test_sub_writes (id TEXT PRIMARY KEY, n INTEGER);"
                "CREATE TRIGGER IF NOT EXISTS test_sub_written AFTER UPDATE ON subscriptions"
                " BEGIN INSERT INTO test_sub_writes VALUES (new.id, 1)"
                " ON CONFLICT (id) DO UPDATE SET n = n + 1; END;"
            )
            row = db.execute(
                "SELECT n FROM test_sub_writes WHERE id = ?", (subscription_id,)
            ).fetchone()
        return row[0] if row else 0
    db = await asyncpg.connect(store_url)
    try:
        return await db.fetchval(
            "SELECT xmin::text FROM subscriptions WHERE id = $1", subscription_id
        )
    finally:
        await db.close()


async def test_only_a_change_of_health_writes_the_subscription_row(
    store: Store, store_url: str
) -> None:
    """Successes to a healthy subscription (nearly every delivery) leave its row unwritten (on
    PostgreSQL no dead tuple per delivery); the first failure sets failing_since, later failures
    keep it without a write, and a success clears it with one."""
    from gateway.store.records import Attempt

    await store.create_subscription(subscription("s1"))
    for _ in range(6):
        await store.record_event(event(), dedupe_window=60)
    now = time.time()
    claimed = await store.claim_deliveries(owner="a", now=now, lease=30, limit=6, exclude=())
    assert len(claimed) == 6
    ok = Attempt(1, "2026-01-01T00:00:00Z", 204, 2.0, None, None)
    bad = Attempt(1, "2026-01-01T00:00:00Z", 500, 2.0, "HTTP 500", None)

    def outcome(n: int, good: bool) -> AttemptOutcome:
        status = "succeeded" if good else "failed"
        return AttemptOutcome(claimed[n].delivery.id, "s1", ok if good else bad, status, None, good)

    before = await _row_version(store_url, "s1")
    await store.complete_attempts([outcome(0, True), outcome(1, True)], now=now)
    await store.complete_attempts([outcome(2, True)], now=now)
    assert await _row_version(store_url, "s1") == before  # healthy, stays so: no write
    assert await store.queue_depth() == 3

    await store.complete_attempts([outcome(3, False)], now=now + 1)
    failing = await _row_version(store_url, "s1")
    assert failing != before
    sub = await store.get_subscription("t1", "s1")
    assert sub is not None
    assert sub.failing_since == pytest.approx(now + 1)
    await store.complete_attempts([outcome(4, False)], now=now + 2)
    assert await _row_version(store_url, "s1") == failing  # still failing since now + 1
    sub = await store.get_subscription("t1", "s1")
    assert sub is not None
    assert sub.failing_since == pytest.approx(now + 1)

    await store.complete_attempts([outcome(5, True)], now=now + 3)
    assert await _row_version(store_url, "s1") != failing
    sub = await store.get_subscription("t1", "s1")
    assert sub is not None
    assert sub.failing_since is None


async def test_disabling_fails_undelivered_deliveries(store: Store) -> None:
    """A disabled (or deleted) subscription's pending deliveries fail; re-enabling clears state."""
    await store.create_subscription(subscription("s1"))
    stored = event()
    await store.record_event(stored, dedupe_window=60)
    disabled = await store.disable_subscription("s1", "410")
    assert disabled is not None
    assert not disabled.enabled
    assert await store.disable_subscription("s1", "again") is None
    [delivery] = await store.list_deliveries("t1", stored.id)
    assert delivery.status == "failed"
    enabled = await store.update_subscription("t1", "s1", SubscriptionChanges(enabled=True))
    assert enabled is not None
    assert enabled.disabled_reason is None
    redelivered = await store.redeliver("t1", stored.id, None)
    assert [d.status for d in redelivered] == ["pending"]
