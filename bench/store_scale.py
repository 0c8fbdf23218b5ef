"""`python -m bench store-scale [--million]`: the store's reads as its history grows (issue 16).

Each store (SQLite, and PostgreSQL when its binaries are installed: a durable server of the
benchmark's own) is filled fast with direct inserts matching the schema (`tests.store_fill`: 2
tenants, 5 subscriptions each, ~1 KB events) to 10k and 100k events (and 1M with `--million`),
then reads are timed: p50/p95 of listEvents' first page and of a deep cursor (half-way down the
history), beside their goal (p95 <= 5 ms at any size).

A skeleton: the claim/complete/record timings, the by-type/by-resource/empty-tenant lists, the
event-loop stall, the store size and a steady-state run under retention are still to come.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench.common import percentile
from gateway.store import Position, Store
from gateway.store.opening import open_store
from tests.pg import PostgresServer, find_binaries
from tests.store_fill import fill

GOAL_P95_MS = 5.0
READS = 200  # per measurement
PAGE = 50


async def timed_reads(store: Store, *, after: Position | None) -> list[float]:
    times = []
    for n in range(READS):
        tenant = ("t1", "t2")[n % 2]
        started = time.perf_counter()
        await store.list_events(tenant, event_type=None, after=after, limit=PAGE)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(url: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Grow the store at `url` through `sizes`, timing the reads at each."""
    figures: dict[str, Any] = {}
    store = open_store(url)
    await store.open()
    try:
        filled = 0
        for size in sizes:
            await fill(url, size - filled, start=time.time() - size, spacing=1.0, first=filled)
            filled = size
            for name, after in (("first_page", None), ("deep_cursor", Position(size // 2))):
                times = await timed_reads(store, after=after)
                p50, p95 = percentile(times, 50), percentile(times, 95)
                verdict = "ok" if p95 <= GOAL_P95_MS else "MISSED"
                goal = f"goal p95 <= {GOAL_P95_MS:g} ms: {verdict}"
                figures[f"{size // 1000}k_{name}"] = f"p50 {p50:.2f} ms, p95 {p95:.2f} ms ({goal})"
    finally:
        await store.close()
    return figures


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    sizes: tuple[int, ...] = (1_000,) if smoke else (10_000, 100_000)
    if os.environ.get("STORE_SCALE_MILLION") and not smoke:
        sizes += (1_000_000,)
    results: dict[str, Any] = {}
    for key, value in (await measure(f"sqlite:///{workdir}/scale.db", sizes)).items():
        results[f"sqlite_{key}"] = value
    binaries = find_binaries()
    if binaries is None:
        results["postgresql"] = "skipped: no PostgreSQL server binaries (make postgres)"
        return results
    server = PostgresServer(binaries)
    try:
        await asyncio.to_thread(server.start, durable=True)
        url = await server.create_database()
        for key, value in (await measure(url, sizes)).items():
            results[f"postgresql_{key}"] = value
    finally:
        await asyncio.to_thread(server.remove)  # stopped, then its folder removed
    return results
