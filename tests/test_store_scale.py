"""The store with a history behind it: every list the API offers is an index range that stops at the
page size (its plan, on both stores, with and without statistics), and SQLite reads never stall
the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest

from gateway.store.opening import open_store
from gateway.store.protocol import Store
from gateway.store.records import Position, Subscription
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite_dialect import SQLiteDb
from tests.store_fill import analyze, fill, loop_gaps

Query = tuple[str, list[object], list[str]]  # a query, its arguments, its plan's lines
SUBSCRIPTION = Subscription(
    id="s", tenant="t", url="http://127.0.0.1:9/hook", event_types=("*",), description=None,
    enabled=True, disabled_reason=None, secret="whsec_" + "A" * 43 + "=", previous_secret=None,
    previous_expires_at=None, failing_since=None, created_at="2026-01-01T00:00:00Z",
    updated_at="2026-01-01T00:00:00Z",
)  # fmt: skip


class Recorder:
    """A `Db` that notes every read query it forwards, with its plan as the query runs it: on
    the same connection, in the same transaction (with whatever the store set in it)."""

    def __init__(self, db: Any, seen: list[Query]) -> None:
        self._db = db
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def _note(self, query: str, args: Any) -> None:
        if isinstance(self._db, SQLiteDb):
            lines = [row[3] for row in await self._db.rows(f"EXPLAIN QUERY PLAN {query}", args)]
        else:
            lines = [row[0] for row in await self._db.rows(f"EXPLAIN {query}", args)]
        self._seen.append((query, list(args), lines))

    async def rows(self, query: str, args: Any = ()) -> Any:
        await self._note(query, args)
        return await self._db.rows(query, args)

    async def row(self, query: str, args: Any = ()) -> Any:
        await self._note(query, args)
        return await self._db.row(query, args)

    async def value(self, query: str, args: Any = ()) -> Any:
        await self._note(query, args)
        return await self._db.value(query, args)

    async def attempts_of(self, delivery_ids: Any) -> Any:
        # The dialect's own steps, their reads through this recorder.
        return await type(self._db).attempts_of(self, delivery_ids)

    async def listed_deliveries(self, query: str, args: Any) -> Any:
        return await type(self._db).listed_deliveries(self, query, args)


def record_reads(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Query]:
    """Every read query of the store's reads and listings from now on (`Recorder`)."""
    seen: list[Query] = []
    for name in ("_read", "_range"):  # a listing may run as a read: noted once
        run: Callable[[Any], Awaitable[Any]] = getattr(store, name)

        async def recording(op: Any, run: Any = run) -> Any:
            return await run(lambda db: op(db if isinstance(db, Recorder) else Recorder(db, seen)))

        monkeypatch.setattr(store, name, recording)
    return seen


@pytest.fixture
async def filled(store_url: str) -> AsyncIterator[Store]:
    """A store holding 20k events (100k deliveries and attempts), no statistics yet: on
    PostgreSQL autovacuum is off for the test's tables so that none appear by themselves."""
    store = open_store(store_url)
    await store.open()
    if not store_url.startswith("sqlite:"):
        conn = await asyncpg.connect(store_url)
        for table in ("events", "deliveries", "attempts", "subscriptions"):
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await conn.close()
    await fill(store_url, 20_000)
    for n in range(2000):  # other tenants': a table bigger than a page or two
        await store.create_subscription(attrs.evolve(SUBSCRIPTION, id=f"s{n}", tenant=f"o{n}"))
    yield store
    await store.close()


async def every_list(store: Store) -> None:
    """Each list the API offers: first pages, deep cursors, a type filter, an empty tenant."""
    for tenant in ("t1", "nobody"):
        for event_type in (None, "acme.done"):
            page = await store.list_events(tenant, event_type=event_type, after=None, limit=50)
            deep = Position(10_000)
            await store.list_events(tenant, event_type=event_type, after=deep, limit=50)
            if page.items:
                await store.get_event(tenant, page.items[0].id)
                await store.list_deliveries(tenant, page.items[0].id)
        subscriptions = await store.list_subscriptions(tenant, after=None, limit=2)
        await store.list_subscriptions(tenant, after=subscriptions.next_position, limit=2)


def unbounded(url: str, query: str, lines: list[str]) -> list[str]:
    """The plan lines that read more than an index range: a table scan, or a sort (on
    PostgreSQL also a bitmap scan but a count's or a lookup of a list of keys': it reads the
    whole range, unordered), except of one event's deliveries and their attempts, or of one
    delivery's attempts (at most a delivery per subscription and redelivery, an attempt per
    retry: bounded whatever the history). A sort that PostgreSQL estimates smaller than the page
    is no exception: without statistics it took a range of 25k events for 10 rows."""
    one_event = any(
        part in query
        for part in ("event_id = ?", "delivery_id IN", "delivery_id = ANY", "delivery_id = k.id")
    )
    if url.startswith("sqlite:"):
        sorts = [line for line in lines if line.startswith("USE TEMP B-TREE")]
        scans = [line for line in lines if line.startswith("SCAN")]
    else:
        # A count reads its whole range by design, a lookup of a page of keys each key's rows:
        # a bitmap is as good an order as any there.
        whole = query.startswith("SELECT COUNT(*)") or "= ANY(" in query
        bitmaps = [] if whole else ["Bitmap Heap Scan"]
        sorts = [line for line in lines if any(k in line for k in ("Sort", *bitmaps))]
        scans = [line for line in lines if "Seq Scan" in line]
    return scans + ([] if one_event else sorts)


@pytest.mark.parametrize("statistics", [False, True])
async def test_every_list_is_an_index_range_that_stops_at_the_page(
    filled: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, statistics: bool
) -> None:
    """With 20k events of history, every query behind listEvents (first page, deep cursor, by
    type, an empty tenant), getEvent, listDeliveries and listSubscriptions plans as index
    searches: no table scan, no sort; before and after ANALYZE (SQLite's plans flipped to a
    backwards walk of the whole table for a tenant with no events once statistics existed;
    PostgreSQL without statistics read a tenant's events of a type by bitmap and sorted them)."""
    if statistics:
        await analyze(store_url)
    seen = record_reads(filled, monkeypatch)
    await every_list(filled)
    assert len(seen) > 10
    await assert_bounded(store_url, seen)


async def assert_bounded(store_url: str, seen: list[Query]) -> None:
    """Every query of `seen` planned as index ranges (`unbounded` finds nothing in its plan)."""
    bad = {query: lines for query, _, lines in seen if unbounded(store_url, query, lines)}
    assert not bad, "\n\n".join(f"{q}\n" + "\n".join(lines) for q, lines in bad.items())


async def test_listing_a_long_history_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """20 first pages and deep pages of a 30k-event SQLite history read at once: the event loop
    is never held more than 50 ms (the reads run on reader threads, each an index range). On the
    loop thread, without the (tenant, seq) index, it was held 0.9 s."""
    url = f"sqlite:///{tmp_path}/history.db"
    store = SQLiteStore(tmp_path / "history.db")
    await store.open()
    await fill(url, 30_000)
    try:
        async with loop_gaps() as gaps:
            reads = [
                store.list_events(tenant, event_type=None, after=after, limit=50)
                for tenant in ("t1", "t2")
                for after in (None, Position(15_000))
                for _ in range(5)
            ]
            pages = await asyncio.gather(*reads)
            assert all(len(page.items) == 50 for page in pages)
    finally:
        await store.close()
    assert max(gaps) < 0.05, f"the loop was held {max(gaps) * 1000:.0f} ms"


async def test_a_type_the_tenant_never_had_lists_from_the_type_index(
    filled: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With statistics, a tenant's events of a type it never had (t2 has none of acme.done, t1
    has 5k) plan as a range of the (tenant, type, seq) index. With `type = ?`, PostgreSQL took
    each tenant and type for a share of the table and walked its primary key backwards,
    filtering both, to the end for t2: 1.6 s at 1M events (python -m bench store-scale)."""
    await analyze(store_url)
    seen = record_reads(filled, monkeypatch)
    page = await filled.list_events("t2", event_type="acme.done", after=None, limit=50)
    assert page.items == []
    [(_, _, lines)] = seen
    assert any("events_tenant_type" in line for line in lines), "\n".join(lines)


async def test_a_listing_that_must_sort_is_not_compiled(pg_url: str) -> None:
    """In a listing's transaction on PostgreSQL sorting is off, so a sort that cannot be avoided
    is costed past jit_above_cost: JIT compilation is off with it (it took 300 ms for a sort of
    an event's 5 deliveries)."""
    store = open_store(pg_url)
    await store.open()
    try:
        plan = await store._range(  # type: ignore[attr-defined]
            lambda db: db.rows("EXPLAIN ANALYZE SELECT id FROM events ORDER BY received_at")
        )
    finally:
        await store.close()
    lines = [row[0] for row in plan]
    assert any("Sort" in line for line in lines)
    assert not any("JIT" in line for line in lines), "\n".join(lines)
