"""Retention of payloads: an event past the payload window loses its data but keeps its metadata
and deliveries, on both stores and through the API; the purge resumes where it ended, waits
for deliveries to end, and a recovery passes such an event over."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from gateway.config_loading import load_settings
from gateway.metrics import StoreMetrics
from gateway.state import STORE
from gateway.store.errors import PayloadPurged
from gateway.store.protocol import Store
from gateway.store.records import Attempt, AttemptOutcome
from gateway.store.retention import Purger, RetentionPolicy
from tests.conftest import MakeGateway
from tests.store_fill import fill
from tests.store_records import DAY, MONTH, event, subscription
from tests.test_settings_cli import problems_of


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
