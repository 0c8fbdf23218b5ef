"""Straight to a store's database: how much room it takes, and its statistics refreshed."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.store_fill import analyze

MB = 1024 * 1024


async def store_mb(url: str) -> float:
    """The store's size on disk, in MB."""
    if url.startswith("sqlite:"):
        path = Path(url.partition("://")[2][1:])
        files = (path, path.with_name(path.name + "-wal"))
        return sum(f.stat().st_size for f in files if f.exists()) / MB
    conn = await asyncpg.connect(url)
    try:
        return float(await conn.fetchval("SELECT pg_database_size(current_database())")) / MB
    finally:
        await conn.close()


async def analyze_postgres(url: str) -> None:
    """PostgreSQL: statistics for a bulk fill, as autovacuum gathers them within a minute of one
    (its naptime): without them the planner takes a tenant's events of one type for a handful and
    reads them all with a bitmap scan, then sorts (300 ms at 100k events). SQLite: nothing (its
    plans are the same either way; the store refreshes them at open and after each purge)."""
    if not url.startswith("sqlite:"):
        await analyze(url)
