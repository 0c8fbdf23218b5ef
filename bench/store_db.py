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
    (its naptime): the figures are the steady state's (the listings plan as index ranges
    without statistics too: `tests/test_store_scale.py`). SQLite: nothing (the store refreshes
    its statistics at open and after each purge)."""
    if not url.startswith("sqlite:"):
        await analyze(url)
