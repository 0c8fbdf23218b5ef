"""The store's size under retention at a steady ingest rate: it must stop growing once the window
is full (issue 16's target: within 10 %).

Time is simulated: each tick is an hour of traffic (`PER_TICK` events with their deliveries and
attempts, written with `tests.store_fill`'s direct inserts, received through that hour), then one
round of the gateway's own purger (`retention.Purger.run_once`) as of the tick's end, with a
window of `WINDOW` ticks. PostgreSQL reuses the room of deleted rows once autovacuum has visited
them: its wake-up interval (`autovacuum_naptime`, 1 min) is compressed with the clock to 1 s,
and ticks are paced to take at least a second, so that it comes by about once a simulated hour
(in real time it would come a dozen times between two purge rounds).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import attrs

from bench.store_db import store_mb
from gateway.store.opening import open_store
from gateway.store.retention import Purger, RetentionPolicy
from tests.store_fill import fill

HOUR = 3600.0
GOAL = 0.10  # the size's spread once the window is full


@attrs.frozen
class Shape:
    ticks: int
    window: int  # ticks an event is kept
    per_tick: int  # events
    pace: float  # real seconds a tick takes at least


FULL = Shape(ticks=40, window=10, per_tick=2000, pace=1.0)
SMOKE = Shape(ticks=8, window=2, per_tick=100, pace=0.0)


@attrs.define
class Tally:
    """The purger's metrics, added up (`retention.PurgeMetrics`)."""

    rows: dict[str, int] = attrs.field(factory=dict)
    oldest_age: float = 0.0

    def purged(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows

    def oldest_event_age(self, seconds: float) -> None:
        self.oldest_age = seconds


async def set_naptime(admin_url: str, value: str | None) -> None:
    """The server's autovacuum wake-up interval (None: back to its default)."""
    conn = await asyncpg.connect(admin_url)
    try:
        if value is None:
            await conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
        else:
            await conn.execute(f"ALTER SYSTEM SET autovacuum_naptime = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def steady(url: str, shape: Shape) -> dict[str, Any]:
    """Ticks of ingest and purge; the size after each, and whether it levelled off."""
    store = open_store(url)
    await store.open()
    tally = Tally()
    policy = RetentionPolicy(keep_events=shape.window * HOUR, batch=100, interval=HOUR)
    purger = Purger(store, policy, tally)
    origin = time.time() - shape.ticks * HOUR
    series: list[float] = []
    try:
        for tick in range(shape.ticks):
            started = time.perf_counter()
            first = tick * shape.per_tick
            start = origin + tick * HOUR
            await fill(url, shape.per_tick, start=start, spacing=HOUR / shape.per_tick, first=first)
            assert await purger.run_once(now=start + HOUR) is not None
            series.append(round(await store_mb(url), 1))
            await asyncio.sleep(max(0.0, shape.pace - (time.perf_counter() - started)))
    finally:
        await store.close()
    # Full from tick `window` on; judged over the second half of the run, well past it.
    settled = series[len(series) // 2 :]
    spread = max(settled) / min(settled) - 1
    verdict = "ok" if spread <= GOAL else "MISSED"
    return {
        "series_mb": series,
        "window_ticks": shape.window,
        "events_per_tick": shape.per_tick,
        "purged_rows": tally.rows,
        "spread": spread,
        "verdict": (
            f"{series[shape.window - 1]:.1f} MB when the window filled, {series[-1]:.1f} MB at"
            f" the end; last half within {spread:.1%} (goal {GOAL:.0%}): {verdict}"
        ),
    }
