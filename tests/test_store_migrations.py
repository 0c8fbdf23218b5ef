"""The stores' schemas: a database migrates from empty and from each earlier version, keeping its
data, on SQLite and on PostgreSQL, and both end with the same versions, tables and columns
(PostgreSQL with room for HOT updates)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from gateway.store import postgres as pg_store
from gateway.store.opening import open_store
from gateway.store.sqlite import SQLiteStore, migrations


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
