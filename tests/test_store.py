"""The store's contract, run against every implementation (parametrised, never copied)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest

from gateway.calls import ResourceBook
from gateway.plugin_api import Event
from gateway.problems import ProblemError
from gateway.store import (
    AttemptOutcome,
    Position,
    ResourceRecord,
    Store,
    StoreUnavailable,
    Subscription,
    SubscriptionChanges,
    postgres as pg_store,
)
from gateway.store.children import Children
from gateway.store.logic import FEW_CHILDREN
from gateway.store.opening import open_store
from gateway.store.sqlite import SQLiteDb, SQLiteStore, migrations
from tests.conftest import eventually
from tests.pg import running_server


@pytest.fixture
async def twin(store: Store, store_url: str) -> AsyncIterator[Store]:
    """A second store on the same database, as another gateway process would have."""
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


def subscription(sid: str, tenant: str = "t1", types: tuple[str, ...] = ("*",)) -> Subscription:
    return Subscription(
        id=sid,
        tenant=tenant,
        url="http://127.0.0.1:9/hook",
        event_types=types,
        description=None,
        enabled=True,
        disabled_reason=None,
        secret="whsec_" + "A" * 43 + "=",
        previous_secret=None,
        previous_expires_at=None,
        failing_since=None,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


def event(event_type: str = "acme.done", tenant: str = "t1", dedupe: str | None = None) -> Event:
    return Event.new(event_type, {"n": 1}, tenant=tenant, backend="acme", dedupe_key=dedupe)


async def test_migrations_from_empty_reach_the_latest_version(tmp_path: Path) -> None:
    """A new database gets every migration, in order, once."""
    store = SQLiteStore(tmp_path / "new.db")
    await store.open()
    assert await store.schema_version() == migrations()[-1][0]
    await store.close()
    await store.open()  # opening again applies nothing twice
    assert await store.schema_version() == migrations()[-1][0]
    await store.close()


@pytest.mark.parametrize("version", [v for v, _ in migrations()[:-1]])
async def test_migrations_from_each_earlier_version_keep_data(tmp_path: Path, version: int) -> None:
    """A database left at an earlier version migrates forward and keeps what it held."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for number, script in migrations():
            if number <= version:
                db.executescript(script)
                db.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (number,))
        db.execute(
            "INSERT INTO resources (kind, id, tenant, backend, parent_id, created_at, updated_at)"
            " VALUES ('product', 'p1', 't1', 'acme', NULL, 'then', 'then')"
        )
    store = SQLiteStore(path)
    await store.open()
    assert await store.schema_version() == migrations()[-1][0]
    record = await store.get_resource("product", "p1")
    assert record is not None
    assert record.tenant == "t1"
    await store.close()


async def test_resources_are_claimed_once(store: Store) -> None:
    """The first claim wins; later claims see the owner; attributes merge by top-level key."""
    first = await store.claim_resource("product", "p1", tenant="t1", backend="acme", parent_id=None)
    second = await store.claim_resource("product", "p1", tenant="t2", backend="x", parent_id=None)
    assert (first.tenant, second.tenant) == ("t1", "t1")
    await store.update_resource("product", "p1", {"name": "a", "sku": "s"})
    updated = await store.update_resource("product", "p1", {"name": "b"})
    assert updated is not None
    assert dict(updated.attributes) == {"name": "b", "sku": "s"}


async def test_a_bare_claim_is_released_and_a_recorded_one_stays(store: Store) -> None:
    """Releasing frees an id nothing was recorded on, for its claimant only; once the backend
    recorded attributes, the resource exists upstream and its claim stays."""
    await store.claim_resource("product", "p1", tenant="t1", backend="acme", parent_id=None)
    assert not await store.release_resource("product", "p1", tenant="t2")
    assert await store.release_resource("product", "p1", tenant="t1")
    assert await store.get_resource("product", "p1") is None
    again = await store.claim_resource("product", "p1", tenant="t2", backend="x", parent_id=None)
    assert again.tenant == "t2"
    await store.update_resource("product", "p1", {"name": "kept"})
    assert not await store.release_resource("product", "p1", tenant="t2")
    kept = await store.get_resource("product", "p1")
    assert kept is not None
    assert kept.tenant == "t2"


async def test_put_resource_creates_once_and_leaves_another_tenants_record(store: Store) -> None:
    """The store's put: created with its attributes the first time, merged afterwards for its
    owner, and another tenant's record returned unchanged (not created, nothing merged)."""
    first, created = await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"name": "a"}
    )
    assert created
    assert first.tenant == "t1"
    assert dict(first.attributes) == {"name": "a"}
    again, created = await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"sku": "s"}
    )
    assert not created
    assert dict(again.attributes) == {"name": "a", "sku": "s"}
    assert again.created_at == first.created_at
    other, created = await store.put_resource(
        "product", "p1", tenant="t2", backend="x", parent_id=None, attributes={"name": "b"}
    )
    assert not created
    assert other.tenant == "t1"
    assert dict(other.attributes) == {"name": "a", "sku": "s"}


async def test_a_backend_recording_another_tenants_id_is_404(store: Store) -> None:
    """When another tenant recorded the id while this call's upstream request was out (another
    process won the race), `ResourceBook.put` is a 404 and the winner's record stays as it was."""
    await store.put_resource(
        "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={"name": "a"}
    )
    book = ResourceBook(store, tenant="t2", backend="acme")
    with pytest.raises(ProblemError) as caught:
        await book.put("product", "p1", {"name": "b"})
    assert caught.value.status == 404
    kept = await store.get_resource("product", "p1")
    assert kept is not None
    assert kept.tenant == "t1"
    assert dict(kept.attributes) == {"name": "a"}
    assert book.recorded == {}


async def test_children_of_several_parents_come_in_one_read(store: Store) -> None:
    """One query lists the kind's records under every given parent, oldest first, the tenant's
    only; other kinds, other parents and no parents at all give nothing."""
    for image, parent, tenant in [
        ("i1", "c1", "t1"),
        ("i2", "c2", "t1"),
        ("i3", "c1", "t1"),
        ("i4", "c3", "t1"),
        ("i5", "c1", "t2"),
    ]:
        await store.claim_resource("image", image, tenant=tenant, backend="acme", parent_id=parent)
    await store.claim_resource("note", "n1", tenant="t1", backend="acme", parent_id="c1")
    listed = await store.list_resources("t1", "image", ["c1", "c2"])
    assert [(r.id, r.parent_id) for r in listed] == [("i1", "c1"), ("i2", "c2"), ("i3", "c1")]
    assert [r.id for r in await store.list_resources("t2", "image", ["c1"])] == ["i5"]
    assert await store.list_resources("t1", "image", []) == []


async def test_a_listing_of_children_follows_every_write(store: Store) -> None:
    """A parent's children, listed again after each kind of write of one of them (a create, new
    attributes by put and by update, a refused create released, another tenant's attempt at the
    same id), are what the database holds then, listed alone or among several parents."""

    async def listed(tenant: str = "t1", parents: tuple[str, ...] = ("p1",)) -> list[Any]:
        found = await store.list_resources(tenant, "configuration", parents)
        return [(r.id, dict(r.attributes)) for r in found]

    assert await listed() == []
    await store.claim_resource("configuration", "c1", tenant="t1", backend="acme", parent_id="p1")
    assert await listed() == [("c1", {})]
    await store.put_resource(
        "configuration", "c1", tenant="t1", backend="acme", parent_id="p1", attributes={"n": 1}
    )
    assert await listed() == [("c1", {"n": 1})]
    await store.update_resource("configuration", "c1", {"n": 2})
    assert await listed() == [("c1", {"n": 2})]
    await store.claim_resource("configuration", "c2", tenant="t1", backend="acme", parent_id="p1")
    assert await listed(parents=("p1", "p2")) == [("c1", {"n": 2}), ("c2", {})]
    assert await store.release_resource("configuration", "c2", tenant="t1")
    assert await listed() == [("c1", {"n": 2})]
    assert await listed(parents=("p2", "p1")) == [("c1", {"n": 2})]
    await store.put_resource(
        "configuration", "c1", tenant="t2", backend="acme", parent_id="p1", attributes={"n": 3}
    )
    assert await listed() == [("c1", {"n": 2})]
    assert await listed("t2") == []


async def test_event_fans_out_to_matching_enabled_subscriptions(store: Store) -> None:
    """One delivery per enabled subscription whose filter matches, in the event's tenant."""
    await store.create_subscription(subscription("s-all"))
    await store.create_subscription(subscription("s-type", types=("acme.done",)))
    await store.create_subscription(subscription("s-other", types=("gateway.test",)))
    await store.create_subscription(subscription("s-tenant2", tenant="t2"))
    await store.create_subscription(subscription("s-off"))
    await store.update_subscription("t1", "s-off", SubscriptionChanges(enabled=False))
    stored = event()
    assert await store.record_event(stored, dedupe_window=60)
    deliveries = await store.list_deliveries("t1", stored.id)
    assert {d.subscription_id for d in deliveries} == {"s-all", "s-type"}
    assert await store.queue_depth() == 2


async def test_duplicates_within_the_window_are_recognised(store: Store) -> None:
    """The same dedupe key inside the window is refused; outside it, accepted again."""
    assert await store.record_event(event(dedupe="cb-1"), dedupe_window=60)
    assert not await store.record_event(event(dedupe="cb-1"), dedupe_window=60)
    assert await store.record_event(event(dedupe="cb-1", tenant="t2"), dedupe_window=60)
    assert await store.record_event(event(dedupe="cb-1"), dedupe_window=0)


async def test_leases_hand_out_each_delivery_once_until_they_expire(store: Store) -> None:
    """A claimed delivery is invisible to other workers until its lease ends (a dead worker)."""
    await store.create_subscription(subscription("s1"))
    await store.record_event(event(), dedupe_window=60)
    now = time.time()
    first = await store.claim_deliveries(owner="a", now=now, lease=30, limit=10, exclude=())
    assert len(first) == 1
    assert first[0].event.type == "acme.done"
    assert first[0].subscription.id == "s1"
    again = await store.claim_deliveries(owner="b", now=now + 1, lease=30, limit=10, exclude=())
    assert again == []
    after = await store.claim_deliveries(owner="b", now=now + 31, lease=30, limit=10, exclude=())
    assert [c.delivery.id for c in after] == [first[0].delivery.id]


async def test_excluded_subscriptions_are_not_claimed(store: Store) -> None:
    """A worker at its limit for a subscription claims only others' deliveries."""
    await store.create_subscription(subscription("busy"))
    await store.create_subscription(subscription("free"))
    await store.record_event(event(), dedupe_window=60)
    claimed = await store.claim_deliveries(
        owner="a", now=time.time(), lease=30, limit=10, exclude=["busy"]
    )
    assert [c.subscription.id for c in claimed] == ["free"]


async def test_tenants_take_turns_within_their_share(store: Store) -> None:
    """A tenant's backlog does not take every slot: each tenant's oldest first, in turns, each
    at most `per_tenant` less what the claimant has in flight for it already."""
    await store.create_subscription(subscription("a1", tenant="ta"))
    await store.create_subscription(subscription("a2", tenant="ta"))
    await store.create_subscription(subscription("b1", tenant="tb"))
    for _ in range(10):
        await store.record_event(event(tenant="ta"), dedupe_window=60)
    await store.record_event(event(tenant="tb"), dedupe_window=60)  # due last of all
    now = time.time() + 1

    async def claim(limit: int, per_tenant: int, busy: dict[str, int]) -> list[str]:
        claimed = await store.claim_deliveries(
            owner="w", now=now, lease=30, limit=limit, exclude=(), per_tenant=per_tenant, busy=busy
        )
        return sorted(c.delivery.tenant for c in claimed)

    assert await claim(2, 16, {}) == ["ta", "tb"]  # turns: ta's oldest, then tb's only one
    assert await claim(8, 3, {"ta": 1}) == ["ta", "ta"]  # 3 less the one in flight
    assert await claim(8, 3, {"ta": 3}) == []  # at its share, though 17 are due
    assert await claim(20, 20, {}) == ["ta"] * 17


async def test_replicas_claiming_at_once_leave_every_tenant_its_turn(
    store: Store, twin: Store
) -> None:
    """Two processes claiming together each take at most their share of the big tenant's
    backlog, and the small tenant's deliveries go out in the same round."""
    for n in range(4):
        await store.create_subscription(subscription(f"a{n}", tenant="ta"))
    await store.create_subscription(subscription("b1", tenant="tb"))
    for _ in range(10):
        await store.record_event(event(tenant="ta"), dedupe_window=60)
    for _ in range(2):
        await store.record_event(event(tenant="tb"), dedupe_window=60)
    now = time.time() + 1
    rounds = await asyncio.gather(
        *(
            s.claim_deliveries(
                owner=f"w{i}", now=now, lease=30, limit=4, exclude=(), per_tenant=2, busy={}
            )
            for i, s in enumerate([store, twin])
        )
    )
    for claimed in rounds:
        assert sum(c.delivery.tenant == "ta" for c in claimed) <= 2
    assert sum(c.delivery.tenant == "tb" for claimed in rounds for c in claimed) == 2


async def test_the_subscription_limit_holds_under_concurrent_creates(
    store: Store, twin: Store
) -> None:
    """Creates racing through two processes never pass a tenant's limit; others' are apart."""
    results = await asyncio.gather(
        *(
            s.create_subscription(subscription(f"s{n}", tenant="t1"), limit=3)
            for n, s in enumerate([store, twin] * 5)
        )
    )
    assert sum(results) == 3
    assert await store.create_subscription(subscription("other", tenant="t2"), limit=3)
    page = await store.list_subscriptions("t1", after=None, limit=50)
    assert len(page.items) == 3


async def test_outcomes_move_deliveries_on(store: Store) -> None:
    """A retry goes back to pending at its time; success and failure are final."""
    await store.create_subscription(subscription("s1"))
    stored = event()
    await store.record_event(stored, dedupe_window=60)
    now = time.time()
    [claimed] = await store.claim_deliveries(owner="a", now=now, lease=30, limit=1, exclude=())
    from gateway.store import Attempt

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
    from gateway.store import Attempt

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


async def test_subscriptions_page_oldest_first_from_a_position(store: Store) -> None:
    """Pages of `limit` in creation order, each continuing after the position the last ended at;
    the last page has no next position; other tenants' subscriptions never show."""
    for n in range(5):
        await store.create_subscription(subscription(f"s{n}"))
        await store.create_subscription(subscription(f"other{n}", tenant="t2"))
    seen: list[str] = []
    after: Position | None = None
    for expected in (2, 2, 1):
        page = await store.list_subscriptions("t1", after=after, limit=2)
        assert len(page.items) == expected
        seen += [s.id for s in page.items]
        after = page.next_position
    assert after is None
    assert seen == [f"s{n}" for n in range(5)]


async def test_events_page_newest_first_from_a_position(store: Store) -> None:
    """Pages of `limit`, newest first, each continuing below the position the last ended at,
    also with a type filter; an event stored while paging shifts no later page."""
    stored = [event("acme.done" if n % 2 else "acme.other") for n in range(6)]
    for e in stored:
        await store.record_event(e, dedupe_window=60)
    await store.record_event(event(tenant="t2"), dedupe_window=60)
    first = await store.list_events("t1", event_type=None, after=None, limit=4)
    late = event()
    await store.record_event(late, dedupe_window=60)
    rest = await store.list_events("t1", event_type=None, after=first.next_position, limit=4)
    assert [e.id for e in [*first.items, *rest.items]] == [e.id for e in reversed(stored)]
    assert rest.next_position is None
    done = [e.id for e in [*stored, late] if e.type == "acme.done"]
    page = await store.list_events("t1", event_type="acme.done", after=None, limit=2)
    assert [e.id for e in page.items] == done[::-1][:2]
    page = await store.list_events("t1", event_type="acme.done", after=page.next_position, limit=2)
    assert [e.id for e in page.items] == done[::-1][2:]
    assert page.next_position is None


async def test_idempotency_claims_expire_as_leases(store: Store) -> None:
    """A running claim blocks others until its lease ends; a finished one replays until its TTL."""
    assert (
        await store.begin_idempotent("t1", "k", operation="op", fingerprint="f", lease=30) is None
    )
    held = await store.begin_idempotent("t1", "k", operation="op", fingerprint="f", lease=30)
    assert held is not None
    assert held.state == "running"
    await store.finish_idempotent("t1", "k", status=201, headers={}, body=b"{}", ttl=60)
    done = await store.get_idempotent("t1", "k")
    assert done is not None
    assert (done.state, done.status, done.body) == ("done", 201, b"{}")
    assert await store.begin_idempotent("t1", "x", operation="op", fingerprint="f", lease=0) is None
    assert await store.begin_idempotent("t1", "x", operation="op", fingerprint="g", lease=5) is None


# -- two processes on one database --------------------------------------------------------------


async def test_a_callback_received_twice_at_once_is_stored_once(store: Store, twin: Store) -> None:
    """The dedupe check and insert are one step across stores: concurrent duplicates lose."""
    await store.create_subscription(subscription("s1"))
    results = await asyncio.gather(
        *(s.record_event(event(dedupe="cb-race"), dedupe_window=60) for s in [store, twin] * 8)
    )
    assert sorted(results) == [False] * 15 + [True]
    assert await store.queue_depth() == 1


async def test_an_idempotency_key_is_claimed_once_across_stores(store: Store, twin: Store) -> None:
    """Concurrent first requests with one key, through two stores: exactly one runs."""
    results = await asyncio.gather(
        *(
            s.begin_idempotent("t1", "k-race", operation="op", fingerprint="f", lease=30)
            for s in [store, twin] * 8
        )
    )
    assert sum(r is None for r in results) == 1
    assert all(r.state == "running" for r in results if r is not None)


async def test_concurrent_claims_never_hand_out_a_delivery_twice(store: Store, twin: Store) -> None:
    """Two stores claiming at once share the due deliveries between them, each exactly once."""
    for n in range(6):
        await store.create_subscription(subscription(f"s{n}"))
    for _ in range(6):
        await store.record_event(event(), dedupe_window=60)
    claimed: list[str] = []
    now = time.time()

    async def worker(s: Store, owner: str) -> None:
        while batch := await s.claim_deliveries(
            owner=owner, now=now, lease=30, limit=5, exclude=()
        ):
            claimed.extend(c.delivery.id for c in batch)

    await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate([store, twin] * 3)))
    assert len(claimed) == 36
    assert len(set(claimed)) == 36


# -- PostgreSQL only ----------------------------------------------------------------------------


def test_both_stores_have_the_same_migrations() -> None:
    """Every schema version exists for both databases: a version means the same thing in each."""
    assert [v for v, _ in pg_store.migrations()] == [v for v, _ in migrations()]


async def test_postgres_tables_updated_per_delivery_leave_room_for_hot_updates(
    pg_url: str,
) -> None:
    """Migration 0006: deliveries and subscriptions keep 30 % of each page free (fillfactor) so
    status updates can be HOT, and autovacuum visits deliveries after 2 % of it changed."""
    store = pg_store.PostgresStore(pg_url)
    await store.open()
    await store.close()
    db = await asyncpg.connect(pg_url)
    try:
        found = {
            row[0]: set(row[1] or ())
            for row in await db.fetch(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname IN ('deliveries', 'subscriptions') AND relkind = 'r'"
            )
        }
    finally:
        await db.close()
    assert found == {
        "deliveries": {
            "fillfactor=70",
            "autovacuum_vacuum_scale_factor=0.02",
            "autovacuum_analyze_scale_factor=0.02",
        },
        "subscriptions": {"fillfactor=70"},
    }


async def _pg_columns(url: str) -> set[tuple[str, str]]:
    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    finally:
        await db.close()
    return {(row[0], row[1]) for row in rows}


async def test_both_stores_have_the_same_tables_and_columns(tmp_path: Path, pg_url: str) -> None:
    """Migrated to the latest version, SQLite and PostgreSQL hold the same tables and columns."""
    lite = SQLiteStore(tmp_path / "schema.db")
    await lite.open()
    await lite.close()
    with sqlite3.connect(tmp_path / "schema.db") as db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        sqlite_columns = {
            (table, row[1]) for table in tables for row in db.execute(f"PRAGMA table_info({table})")
        }
    postgres = open_store(pg_url)
    await postgres.open()
    await postgres.close()
    assert await _pg_columns(pg_url) == sqlite_columns


async def test_postgres_migrations_from_empty_reach_the_latest_version(pg_url: str) -> None:
    """A new PostgreSQL database gets every migration once, even with two replicas starting."""
    first, second = open_store(pg_url), open_store(pg_url)
    assert isinstance(first, pg_store.PostgresStore)
    assert isinstance(second, pg_store.PostgresStore)
    await asyncio.gather(first.open(), second.open())  # the advisory lock serialises them
    assert await first.schema_version() == pg_store.migrations()[-1][0]
    await asyncio.gather(first.close(), second.close())
    again = pg_store.PostgresStore(pg_url)
    await again.open()  # opening again applies nothing twice
    assert await again.schema_version() == pg_store.migrations()[-1][0]
    await again.close()


@pytest.mark.parametrize("version", [v for v, _ in pg_store.migrations()[:-1]])
async def test_postgres_migrations_from_each_earlier_version_keep_data(
    pg_url: str, version: int
) -> None:
    """A PostgreSQL database left at an earlier version migrates forward and keeps its data."""
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        for number, script in pg_store.migrations():
            if number <= version:
                await db.execute(script)
                await db.execute("INSERT INTO schema_migrations VALUES ($1, 'then')", number)
        await db.execute(
            "INSERT INTO resources (kind, id, tenant, backend, parent_id, created_at, updated_at)"
            " VALUES ('product', 'p1', 't1', 'acme', NULL, 'then', 'then')"
        )
    finally:
        await db.close()
    store = pg_store.PostgresStore(pg_url)
    await store.open()
    assert await store.schema_version() == pg_store.migrations()[-1][0]
    record = await store.get_resource("product", "p1")
    assert record is not None
    assert record.tenant == "t1"
    await store.close()


async def test_listeners_wake_when_another_process_queues_deliveries(pg_url: str) -> None:
    """A new event, a redelivery and a lease handed back through one store wake the other's
    listener once each (LISTEN/NOTIFY); what queues nothing (an event without subscribers, a
    claim) does not, nor does what the listening store queues itself (its process wakes its own
    workers)."""
    writer, reader = pg_store.PostgresStore(pg_url), pg_store.PostgresStore(pg_url)
    await writer.open()
    await reader.open()
    wakes: list[float] = []
    reader.listen(lambda: wakes.append(time.time()))
    try:
        await eventually(lambda: len(wakes) == 1, within=10)  # on connecting: the backlog
        await writer.record_event(event(), dedupe_window=60)  # no subscription: nothing queued
        await writer.create_subscription(subscription("s1"))
        await reader.record_event(event(), dedupe_window=60)  # its own
        stored = event()
        await writer.record_event(stored, dedupe_window=60)
        await eventually(lambda: len(wakes) == 2, within=10)
        await writer.redeliver("t1", stored.id, None)
        await eventually(lambda: len(wakes) == 3, within=10)
        [claimed, *_] = await writer.claim_deliveries(
            owner="a", now=time.time(), lease=30, limit=3, exclude=()
        )
        back = AttemptOutcome(claimed.delivery.id, "s1", None, "pending", time.time(), True)
        await writer.complete_attempts([back], now=time.time())
        await eventually(lambda: len(wakes) >= 4, within=10)
        # Notifications arrive in commit order: had the others woken it, it would show by now.
        assert len(wakes) == 4
    finally:
        await reader.close()
        await writer.close()


async def test_a_stopped_server_is_unavailable_and_the_store_recovers_by_itself() -> None:
    """With PostgreSQL stopped every operation raises StoreUnavailable (nothing else); once it is
    started again the same store works without reopening, and its listener reconnects."""
    with running_server() as server:
        url = await server.create_database()
        store = pg_store.PostgresStore(url)
        await store.open()
        wakes: list[float] = []
        store.listen(lambda: wakes.append(time.time()))
        try:
            await store.create_subscription(subscription("s1"))
            await eventually(lambda: len(wakes) == 1, within=10)
            await asyncio.to_thread(server.stop)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.record_event(event(), dedupe_window=60)
            with pytest.raises(StoreUnavailable):
                await store.claim_deliveries(
                    owner="a", now=time.time(), lease=1, limit=1, exclude=()
                )
            await asyncio.to_thread(server.start)
            await eventually(lambda: len(wakes) == 2, within=20)  # reconnected: catch up
            await store.ping()
            assert await store.record_event(event(), dedupe_window=60)
            assert await store.queue_depth() == 1
        finally:
            await store.close()


def _reader_hops(store: SQLiteStore) -> list[str]:
    """A list that gets "reader" for every read `store` sends to a reader thread from now on."""
    hops: list[str] = []
    reads = store._read

    async def counted(op: Any) -> Any:
        hops.append("reader")
        return await reads(op)

    store._read = counted  # type: ignore[method-assign]
    return hops


async def test_sqlite_looks_a_resource_up_on_the_loops_thread_and_hops_only_when_busy(
    tmp_path: Path,
) -> None:
    """SQLite answers a lookup by key (the resource read of every proxied call) on the event
    loop's thread, sparing the reader thread's hop; when SQLite cannot answer at once there (busy),
    the same read goes to a reader thread instead of waiting on the loop."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.put_resource(
            "product", "p1", tenant="t1", backend="acme", parent_id=None, attributes={}
        )
        threads = _reader_hops(store)
        found = await store.get_resource("product", "p1")
        assert found is not None
        assert found.tenant == "t1"
        assert threads == []

        async def busy_on_the_loop(db: Any) -> str:
            if threading.current_thread() is threading.main_thread():
                raise sqlite3.OperationalError("database is locked")
            return threading.current_thread().name

        answered_in = await store._lookup(busy_on_the_loop)
        assert answered_in.startswith("sqlite-reader")
        assert threads == ["reader"]
    finally:
        await store.close()


class _BusyCursor(sqlite3.Cursor):
    """A cursor SQLite cannot answer on at once, as while it recovers a WAL file."""

    def execute(self, *_: Any) -> sqlite3.Cursor:
        raise sqlite3.OperationalError("database is locked")


class _BusyConnection(sqlite3.Connection):
    def cursor(self, *_: Any) -> sqlite3.Cursor:
        return super().cursor(_BusyCursor)

    def execute(self, *_: Any) -> sqlite3.Cursor:
        raise sqlite3.OperationalError("database is locked")


async def test_sqlite_reads_a_parents_children_in_a_reader_when_busy_on_the_loop(
    tmp_path: Path,
) -> None:
    """The children lookup (a statement on the loop's thread, without an operation) takes the
    reader thread's hop when SQLite cannot answer at once there, and lists the same children."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    prober = store._prober
    assert prober is not None
    try:
        for n in range(2):
            await store.claim_resource(
                "configuration", f"c{n}", tenant="t1", backend="acme", parent_id="p1"
            )
        threads = _reader_hops(store)
        store._prober = SQLiteDb(sqlite3.connect(tmp_path / "gateway.db", factory=_BusyConnection))
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c0", "c1"]
        assert threads == ["reader"]
    finally:
        await store.close()
        prober.conn.close()


async def test_a_filter_made_after_a_tenants_events_applies_to_its_next_one(
    store: Store, twin: Store
) -> None:
    """Recording the events of a tenant without filtered subscriptions reads no filter; a filter
    that appears later, however it appears (a subscription created with one, a filter set on one,
    a filtered one enabled again, one made through another store on the database), applies to the
    tenant's very next event."""
    filtered = SubscriptionChanges(filter="data.n == `2`")

    async def delivered(n: int) -> set[str]:
        recorded = Event.new("acme.done", {"n": n}, tenant="t1", backend="acme")
        assert await store.record_event(recorded, dedupe_window=0)
        return {d.subscription_id for d in await store.list_deliveries("t1", recorded.id)}

    await store.create_subscription(subscription("s1"))
    assert await delivered(1) == {"s1"}
    await store.update_subscription("t1", "s1", filtered)  # a filter set on it
    assert await delivered(1) == set()
    assert await delivered(2) == {"s1"}
    await store.update_subscription("t1", "s1", SubscriptionChanges(filter=None))
    assert await delivered(1) == {"s1"}
    await store.create_subscription(attrs.evolve(subscription("s2"), filter="data.n == `2`"))
    assert await delivered(1) == {"s1"}  # created with one
    assert await delivered(2) == {"s1", "s2"}
    await store.disable_subscription("s2", "test")
    assert await delivered(2) == {"s1"}
    await store.update_subscription("t1", "s2", SubscriptionChanges(enabled=True))
    assert await delivered(1) == {"s1"}  # enabled again
    assert await delivered(2) == {"s1", "s2"}
    await store.delete_subscription("t1", "s2")
    assert await delivered(2) == {"s1"}
    await twin.update_subscription("t1", "s1", filtered)  # through another store
    assert await delivered(1) == set()
    assert await delivered(2) == {"s1"}


async def test_a_hold_or_an_order_made_after_claims_applies_to_the_next_claim(
    store: Store, twin: Store
) -> None:
    """Claims made while no subscription is held or ordered check neither; a subscriber's hold
    (429 with Retry-After) and an ordering subscription made later, even through another store
    on the database, apply to the very next claim."""

    async def claim() -> list[str]:
        found = await store.claim_deliveries(
            owner="w", now=time.time(), lease=30, limit=10, exclude=()
        )
        return [c.delivery.event_id for c in found]

    await store.create_subscription(subscription("s1"))
    first = event()
    assert await store.record_event(first, dedupe_window=0)
    [claimed] = await store.claim_deliveries(
        owner="w", now=time.time(), lease=30, limit=10, exclude=()
    )
    assert claimed.delivery.event_id == first.id
    await store.complete_attempts(
        [
            AttemptOutcome(
                claimed.delivery.id, "s1", None, "pending", time.time(), False, time.time() + 60
            )
        ],
        now=time.time(),
    )
    assert await store.record_event(event(), dedupe_window=0)
    assert await claim() == []  # s1 is held for a minute
    await store.delete_subscription("t1", "s1")
    assert await claim() == []  # nothing held, nothing ordered
    ordered = attrs.evolve(subscription("s2"), order_by="resource")
    await twin.create_subscription(ordered)
    about = [
        Event.new("acme.done", {"productId": "p1", "n": n}, tenant="t1", backend="acme")
        for n in (1, 2)
    ]
    for each in about:
        assert await store.record_event(each, dedupe_window=0)
    assert await claim() == [about[0].id]  # the second waits for the first
    assert await claim() == []


async def test_sqlite_lists_a_parents_few_children_on_the_loops_thread(tmp_path: Path) -> None:
    """A parent's children (the configurations every proxied listing reads) are a lookup on
    SQLite while there are at most `FEW_CHILDREN`: no reader thread's hop. Past that bound the
    loop reads no more than the bound, and the whole list comes from a reader thread, still
    oldest first."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        threads = _reader_hops(store)

        async def children(count: int, parent: str) -> None:
            # Ids against the order of creation, so the order can only come from created_at.
            for n in reversed(range(count)):
                await store.claim_resource(
                    "configuration", f"{parent}-{n:03}", tenant="t1", backend="acme",
                    parent_id=parent,
                )  # fmt: skip
                await asyncio.sleep(0.002)  # created_at has milliseconds

        await children(FEW_CHILDREN, "few")
        listed = await store.list_resources("t1", "configuration", ["few"])
        assert [r.id for r in listed] == [f"few-{n:03}" for n in reversed(range(FEW_CHILDREN))]
        assert threads == []

        await children(FEW_CHILDREN + 1, "many")
        listed = await store.list_resources("t1", "configuration", ["many"])
        assert [r.id for r in listed] == [f"many-{n:03}" for n in reversed(range(FEW_CHILDREN + 1))]
        assert threads == ["reader"]
    finally:
        await store.close()


def _lookups(store: SQLiteStore) -> list[Sequence[object]]:
    """A list that gets the arguments of every children lookup `store` makes from now on."""
    made: list[Sequence[object]] = []
    lookup = store._lookup_rows

    async def counted(query: str, args: Sequence[object]) -> Sequence[Any]:
        made.append(args)
        return await lookup(query, args)

    store._lookup_rows = counted  # type: ignore[method-assign]
    return made


async def test_sqlite_remembers_a_parents_children_until_one_is_written(tmp_path: Path) -> None:
    """The SQLite store serves one process, which writes every resource through it: a parent's
    children are read from the database once, then again only after a write under that parent;
    each tenant's apart."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.claim_resource(
            "configuration", "c1", tenant="t1", backend="acme", parent_id="p1"
        )
        lookups = _lookups(store)
        for _ in range(3):
            assert [r.id for r in await store.list_resources("t1", "configuration", ["p1"])] == [
                "c1"
            ]
        assert len(lookups) == 1
        assert await store.list_resources("t2", "configuration", ["p1"]) == []
        assert len(lookups) == 2
        await store.claim_resource(
            "configuration", "c2", tenant="t1", backend="acme", parent_id="p2"
        )
        await store.list_resources("t1", "configuration", ["p1"])
        assert len(lookups) == 2  # a write under another parent
        await store.claim_resource(
            "configuration", "c3", tenant="t1", backend="acme", parent_id="p1"
        )
        listed = await store.list_resources("t1", "configuration", ["p1", "p2"])
        assert [r.id for r in listed] == ["c1", "c2", "c3"]
        assert len(lookups) == 3
    finally:
        await store.close()


async def test_sqlite_forgets_a_listing_read_while_a_write_ended(tmp_path: Path) -> None:
    """A children lookup that read the database before a write under its parent ended, and
    returns after it, answers what it read, and is not remembered: the next listing has the
    written child."""
    store = SQLiteStore(tmp_path / "gateway.db")
    await store.open()
    try:
        await store.claim_resource(
            "configuration", "c1", tenant="t1", backend="acme", parent_id="p1"
        )
        lookup = store._lookup_rows

        async def overtaken(query: str, args: Sequence[object]) -> Sequence[Any]:
            found = await lookup(query, args)
            await store.claim_resource(
                "configuration", "c2", tenant="t1", backend="acme", parent_id="p1"
            )
            return found

        store._lookup_rows = overtaken  # type: ignore[method-assign]
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c1"]
        store._lookup_rows = lookup  # type: ignore[method-assign]
        listed = await store.list_resources("t1", "configuration", ["p1"])
        assert [r.id for r in listed] == ["c1", "c2"]
    finally:
        await store.close()


def test_remembered_children_stay_bounded() -> None:
    """At most `parents` parents are remembered (the oldest goes first), and a parent with more
    than `most` children is not remembered at all: memory stays bounded at any size."""
    made = [
        ResourceRecord("image", f"i{n}", "t1", "acme", "many", {}, f"2026-01-01T00:00:0{n}Z", "")
        for n in range(3)
    ]
    children = Children(parents=2, most=2)
    for parent in ("a", "b", "c"):
        children.remember(children.generation, "t1", "image", [parent], [])
    assert children.get("t1", "image", ["a"]) is None
    assert children.get("t1", "image", ["b", "c"]) == []
    children.remember(children.generation, "t1", "image", ["many"], made)
    assert children.get("t1", "image", ["many"]) is None
    children.remember(children.generation, "t1", "image", ["many"], made[:2])
    assert children.get("t1", "image", ["many"]) == made[:2]
