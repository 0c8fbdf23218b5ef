"""`python -m bench store-scale [--million | --size N]`: the store as its history grows (issue
16).

Each store (SQLite, and PostgreSQL when its binaries are installed: a durable server of the
benchmark's own) is filled fast with direct inserts matching the schema (`tests.store_fill`: 2
tenants, 5 subscriptions each, ~1 KB events, 5 deliveries and ~5 attempts each), one database to 10k
events and one to 100k (10k and 1M with `--million`: ~3 min a store to fill, ~30 min in all on 2
cores; 10k and N with `--size N`; the fill's time is reported). Then every operation of
`bench.store_ops.OPERATIONS` is timed (p50/p95) in rounds that alternate between the two databases
(10k, 1M, 1M, 10k, ...): the comparison of sizes holds on a shared machine whose load changes from
minute to minute, which two phases run minutes apart did not (PostgreSQL's record measured 1.6 ms at
10k, 4.0 ms at 1M, the same statements). Then the longest event-loop stall while 20 listings run,
alternating too, and each store's size. Each figure is printed against its goal: p95 <= 5 ms for
every API read, a stall <= 20 ms, and, from the smaller size to the larger, a ratio <= 1.5 per
operation (of p50s: p95s of sub-millisecond timings on a shared machine are mostly scheduling noise;
the p95 ratio is printed beside it). Then the steady-state run under retention
(`bench.store_steady`), on each store.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import store_steady
from bench.common import percentile
from bench.store_db import analyze_postgres, store_mb
from bench.store_ops import OPERATIONS, Context, Operation, Timings, churn, longest_stall
from gateway.logs import configure_logging
from gateway.store.opening import open_store
from tests.pg import PostgresServer, find_binaries
from tests.store_fill import fill

GOAL_P95_MS = 5.0
GOAL_STALL_MS = 20.0
GOAL_RATIO = 1.5
READS = 200  # timings per row and size
ROUNDS = 10  # each row's timings taken in rounds alternating between the sizes
STALL_ROUNDS = 5
CHURN = 20_000  # events of the burst before the "after churn" rows


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def measure(urls: Mapping[int, str], *, reads: int, burst: int) -> dict[int, Any]:
    """Each size's store (at `urls[size]`) filled, then every row of `OPERATIONS` timed in
    `ROUNDS` rounds that alternate between the sizes (the smallest first in even rounds, last in
    odd ones; `reads` calls a row in all), so that a change in the machine's load falls on every
    size alike; then the rows after a burst of traffic likewise, the stalls, the sizes."""
    stores = {size: open_store(url) for size, url in urls.items()}
    contexts = {
        size: Context(store, size, max(1, reads // ROUNDS), burst) for size, store in stores.items()
    }
    timings: dict[int, dict[str, Timings]] = {size: {} for size in urls}
    fill_seconds: dict[int, float] = {}

    def order(n: int) -> list[int]:
        return sorted(urls, reverse=n % 2 == 1)

    async def rounds(rows: list[Operation]) -> None:
        for n in range(ROUNDS):
            for op in rows:
                for size in order(n):
                    contexts[size].round = n
                    assert op.measure is not None
                    timings[size].setdefault(op.name, []).extend(await op.measure(contexts[size]))

    try:
        for size, url in urls.items():
            await stores[size].open()
            started, contexts[size].newest = time.perf_counter(), time.time()
            await fill(url, size, start=contexts[size].newest - size, spacing=1.0)
            fill_seconds[size] = time.perf_counter() - started
            await analyze_postgres(url)
        timed = [op for op in OPERATIONS if op.measure is not None]
        await rounds([op for op in timed if not op.after_churn])
        for size in order(1):  # the smallest last: the first round's first
            await churn(contexts[size])
        await rounds([op for op in timed if op.after_churn])
        stalls = dict.fromkeys(urls, 0.0)
        for n in range(STALL_ROUNDS):
            for size in order(n):
                stall = await longest_stall(stores[size], size, rounds=1)
                stalls[size] = max(stalls[size], stall)
        figures: dict[int, Any] = {}
        for size, url in urls.items():
            operations: dict[str, Any] = {}
            for op in OPERATIONS:
                times = timings[size].get(op.name)
                if times is None:
                    operations[op.name] = {"read": op.read, "note": op.note}
                    continue
                operations[op.name] = {
                    "read": op.read,
                    "p50": percentile(times, 50),
                    "p95": percentile(times, 95),
                    "count": len(times),
                }
            figures[size] = {
                "fill_seconds": fill_seconds[size],
                "operations": operations,
                "stall_ms": stalls[size],
                "store_mb": await store_mb(url),
            }
        return figures
    finally:
        for store in stores.values():
            await store.close()


def report(name: str, figures: dict[int, Any]) -> dict[str, str]:
    """Printable lines: each figure against its goal."""
    lines: dict[str, str] = {}
    for size, at in figures.items():
        where = f"{name} {label(size)}"
        lines[f"{where} fill"] = f"{at['fill_seconds']:.1f} s ({size} events, direct inserts)"
        for op, f in at["operations"].items():
            if "p50" not in f:
                lines[f"{where} {op}"] = f["note"]
                continue
            goal = ""
            if f["read"]:
                goal = f" (goal p95 <= {GOAL_P95_MS:g} ms: {verdict(f['p95'] <= GOAL_P95_MS)})"
            lines[f"{where} {op}"] = f"p50 {f['p50']:.2f} ms, p95 {f['p95']:.2f} ms{goal}"
        stall = at["stall_ms"]
        ok = verdict(stall <= GOAL_STALL_MS)
        lines[f"{where} stall"] = f"{stall:.1f} ms (goal <= {GOAL_STALL_MS:g} ms: {ok})"
        lines[f"{where} size"] = f"{at['store_mb']:.0f} MB"
    small, large = min(figures), max(figures)
    if small != large:
        for op, f in figures[large]["operations"].items():
            before = figures[small]["operations"][op]
            if "p50" not in f:
                continue
            p50, p95 = f["p50"] / before["p50"], f["p95"] / before["p95"]
            lines[f"{name} {label(large)}/{label(small)} {op}"] = (
                f"p50 x{p50:.2f} (goal <= {GOAL_RATIO:g}: {verdict(p50 <= GOAL_RATIO)}),"
                f" p95 x{p95:.2f}"
            )
    return lines


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    configure_logging("console", "warning")  # the purger's rounds are the steady run's figures
    sizes: tuple[int, ...] = (1_000, 2_000) if smoke else (10_000, 100_000)
    if os.environ.get("STORE_SCALE_MILLION") and not smoke:
        sizes = (10_000, 1_000_000)
    elif os.environ.get("STORE_SCALE_SIZE") and not smoke:  # `--size N`: a size between
        sizes = (10_000, int(os.environ["STORE_SCALE_SIZE"]))
    reads, burst = (20, 200) if smoke else (READS, CHURN)
    shape = store_steady.SMOKE if smoke else store_steady.FULL
    results: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    steady: dict[str, Any] = {}

    async def one(name: str, urls: list[str], *, admin_url: str | None = None) -> None:
        *scale, steady_url = urls
        by_size = dict(zip(sizes, scale, strict=True))
        figures[name] = await measure(by_size, reads=reads, burst=burst)
        results.update(report(name, figures[name]))
        if admin_url is not None:  # autovacuum's wake-up, compressed with the steady clock
            await store_steady.set_naptime(admin_url, "1s")
        steady[name] = await store_steady.steady(steady_url, shape)
        series = " ".join(f"{mb:g}" for mb in steady[name]["series_mb"])
        results[f"{name} steady size (MB)"] = series
        results[f"{name} steady verdict"] = steady[name]["verdict"]

    names = [f"scale-{label(size)}" for size in sizes] + ["steady"]
    await one("sqlite", [f"sqlite:///{workdir}/{name}.db" for name in names])
    binaries = find_binaries()
    if binaries is None:
        results["postgresql"] = "skipped: no PostgreSQL server binaries (make postgres)"
    else:
        server = PostgresServer(binaries)
        try:
            await asyncio.to_thread(server.start, durable=True)
            urls = [await server.create_database() for _ in names]
            await one("postgresql", urls, admin_url=server.admin_url)
        finally:
            await asyncio.to_thread(server.remove)  # stopped, then its folder removed
    missed = [key for key, line in results.items() if "MISSED" in line]
    results["verdict"] = "every goal met" if not missed else f"missed: {', '.join(missed)}"
    results["figures"] = {n: {label(s): f for s, f in at.items()} for n, at in figures.items()}
    results["steady"] = steady
    return results
