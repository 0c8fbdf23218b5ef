"""A realistic store history, written fast with direct inserts that match the schema exactly:
2 tenants with 5 subscriptions each, ~1 KB events, one delivery per subscription and event, 99 %
delivered at the first attempt (the rest failed after two). Used by the store tests (plans, stalls,
retention) and by `python -m bench store-scale`."""

# ruff: noqa: S608 - the statements are composed from the constant column lists below only

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson

TENANTS = ("t1", "t2")
SUBSCRIPTIONS = 5  # per tenant
TYPES = ("acme.done", "acme.failed", "acme.progress", "acme.other")
PAYLOAD = "x" * 900  # with the rest of the event: ~1 KB stored
# Event n concerns product p{n % PRODUCTS} (even ones are t1's): 100 events each at 10k, so a
# page of a product's events is full at every size the benchmark compares.
PRODUCTS = 100
CHUNK = 5000


def subscription_rows() -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for tenant in TENANTS:
        for n in range(SUBSCRIPTIONS):
            sid = f"sub_{tenant}_{n}"
            created = "2026-01-01T00:00:00.000+00:00"
            secret = "whsec_" + "A" * 43 + "="
            rows.append((sid, tenant, "http://127.0.0.1:9/hook", '["*"]', None, True, None,
                         secret, None, None, None, created, created))  # fmt: skip
    return rows


def history(
    count: int, *, start: float, spacing: float, first: int = 0
) -> Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]]:
    """(events, deliveries, attempts) rows in chunks: `count` events, received `spacing` seconds
    apart from `start`, tenants alternating, numbered from `first` (ids stay unique across
    fills)."""
    events: list[tuple[object, ...]] = []
    deliveries: list[tuple[object, ...]] = []
    attempts: list[tuple[object, ...]] = []
    for n in range(first, first + count):
        tenant = TENANTS[n % len(TENANTS)]
        at = start + (n - first) * spacing
        event_id = f"evt_{n:010d}"
        data = orjson.dumps({"n": n, "productId": f"p{n % PRODUCTS}", "pad": PAYLOAD}).decode()
        events.append((event_id, TYPES[n % len(TYPES)], tenant, "acme", "2026-01-01T00:00:00Z",
                       data, f"cb-{n}", "2026-01-01T00:00:00.000+00:00", at))  # fmt: skip
        for s in range(SUBSCRIPTIONS):
            delivery_id = f"dlv_{n:010d}_{s}"
            failed = (n * SUBSCRIPTIONS + s) % 100 == 0
            status, tries = ("failed", 2) if failed else ("succeeded", 1)
            error = "HTTP 500" if failed else None
            deliveries.append((delivery_id, event_id, f"sub_{tenant}_{s}", tenant, status, tries,
                               None, None, None, error, at, at))  # fmt: skip
            for number in range(1, tries + 1):
                code = 500 if failed else 204
                attempts.append((delivery_id, number, "2026-01-01T00:00:00Z", code, 12.5,
                                 None, None))  # fmt: skip
        if len(events) == CHUNK:
            yield events, deliveries, attempts
            events, deliveries, attempts = [], [], []
    if events:
        yield events, deliveries, attempts


EVENT_COLUMNS = (
    "id, type, tenant, backend, occurred_at, data, dedupe_key, received_at, received_epoch"
)
DELIVERY_COLUMNS = (
    "id, event_id, subscription_id, tenant, status, attempts, next_attempt_at, lease_owner,"
    " lease_until, last_error, created_at, updated_at"
)
ATTEMPT_COLUMNS = "delivery_id, number, at, status, duration_ms, error, response_excerpt"
SUBSCRIPTION_COLUMNS = (
    "id, tenant, url, event_types, description, enabled, disabled_reason, secret,"
    " previous_secret, previous_expires_at, failing_since, created_at, updated_at"
)


def _marks(columns: str) -> str:
    return ", ".join("?" * len(columns.split(", ")))


def fill_sqlite(
    path: Path, count: int, *, start: float | None = None, spacing: float = 1.0, first: int = 0
) -> None:
    """`count` events (with their deliveries and attempts) into the migrated database at `path`,
    the newest received now (or `start + count * spacing`)."""
    start = time.time() - count * spacing if start is None else start
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        if not db.execute("SELECT 1 FROM subscriptions LIMIT 1").fetchone():
            rows = subscription_rows()
            db.executemany(
                f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}, seq)"
                f" VALUES ({_marks(SUBSCRIPTION_COLUMNS)}, ?)",
                [(*row, n + 1) for n, row in enumerate(rows)],
            )
        for events, deliveries, attempts in history(
            count, start=start, spacing=spacing, first=first
        ):
            db.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({_marks(EVENT_COLUMNS)})",
                           events)  # fmt: skip
            db.executemany(
                f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ({_marks(DELIVERY_COLUMNS)})",
                deliveries,
            )
            db.executemany(
                f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({_marks(ATTEMPT_COLUMNS)})",
                attempts,
            )
        db.execute("COMMIT")
    finally:
        db.close()


async def fill_postgres(
    url: str, count: int, *, start: float | None = None, spacing: float = 1.0, first: int = 0
) -> None:
    """As `fill_sqlite`, into the migrated PostgreSQL database at `url` (COPY)."""
    start = time.time() - count * spacing if start is None else start
    db = await asyncpg.connect(url)
    try:
        if not await db.fetchval("SELECT 1 FROM subscriptions LIMIT 1"):
            await db.copy_records_to_table(
                "subscriptions",
                records=subscription_rows(),
                columns=SUBSCRIPTION_COLUMNS.split(", "),
            )
        for events, deliveries, attempts in history(
            count, start=start, spacing=spacing, first=first
        ):
            await db.copy_records_to_table(
                "events", records=events, columns=EVENT_COLUMNS.split(", ")
            )
            await db.copy_records_to_table(
                "deliveries", records=deliveries, columns=DELIVERY_COLUMNS.split(", ")
            )
            await db.copy_records_to_table(
                "attempts", records=attempts, columns=ATTEMPT_COLUMNS.split(", ")
            )
    finally:
        await db.close()


async def fill(
    url: str, count: int, *, start: float | None = None, spacing: float = 1.0, first: int = 0
) -> None:
    """`fill_sqlite` or `fill_postgres`, by the store URL's scheme."""
    if url.startswith("sqlite:"):
        path = Path(url.partition("://")[2][1:])
        fill_sqlite(path, count, start=start, spacing=spacing, first=first)
    else:
        await fill_postgres(url, count, start=start, spacing=spacing, first=first)


async def analyze(url: str) -> None:
    """Statistics for every table of the store at `url` (`ANALYZE`)."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.partition("://")[2][1:]) as db:
            db.execute("ANALYZE")
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def loop_gaps() -> AsyncIterator[list[float]]:
    """The gaps (seconds) between the ticks of a 1 ms ticker on the event loop while the block
    runs: the longest is how long the loop was held."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.01)
        yield gaps
    finally:
        done.set()
        await ticking
