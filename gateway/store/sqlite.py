"""The SQLite store: the embedded default, in WAL mode, migrated forward at start-up."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from gateway.backend import Event
from gateway.store import EventPage, IdempotentRecord, ResourceRecord

MIGRATIONS = "gateway.store.migrations.sqlite"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts, in order."""
    found = []
    for entry in resources.files(MIGRATIONS).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " applied_at TEXT NOT NULL)"
        )
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as c:
            row = await c.fetchone()
        current = row[0] if row else 0
        for version, script in migrations():
            if version <= current:
                continue
            # One transaction per migration: a crash leaves the schema at a known version.
            await self.db.executescript(
                f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version}, '{_now()}');"
                "\nCOMMIT;"
            )

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT MAX(version) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> None:
        async with self.db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        async with self.db.execute(
            "SELECT kind, id, tenant, backend, parent_id, attributes, created_at, updated_at"
            " FROM resources WHERE kind = ? AND id = ?",
            (kind, resource_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _resource(row) if row else None

    async def claim_resource(
        self,
        kind: str,
        resource_id: str,
        *,
        tenant: str,
        backend: str,
        parent_id: str | None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ResourceRecord:
        now = _now()
        await self.db.execute(
            "INSERT OR IGNORE INTO resources (kind, id, tenant, backend, parent_id, attributes,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, resource_id, tenant, backend, parent_id, _json(attributes or {}), now, now),
        )
        record = await self.get_resource(kind, resource_id)
        assert record is not None
        return record

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        # json_patch merges top-level keys in one statement: no read-modify-write race.
        await self.db.execute(
            "UPDATE resources SET attributes = json_patch(attributes, ?), updated_at = ?"
            " WHERE kind = ? AND id = ?",
            (_json(attributes), _now(), kind, resource_id),
        )
        return await self.get_resource(kind, resource_id)

    async def list_resources(
        self, tenant: str, kind: str, parent_id: str
    ) -> Sequence[ResourceRecord]:
        async with self.db.execute(
            "SELECT kind, id, tenant, backend, parent_id, attributes, created_at, updated_at"
            " FROM resources WHERE parent_id = ? AND kind = ? AND tenant = ?"
            " ORDER BY created_at, id",
            (parent_id, kind, tenant),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_resource(row) for row in rows]

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        now = time.time()
        await self.db.execute(
            "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at <= ?",
            (tenant, key, now),
        )
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO idempotency_keys (tenant, key, operation, fingerprint, state,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (tenant, key, operation, fingerprint, _now(), now + lease),
        )
        if cursor.rowcount == 1:
            return None
        return await self.get_idempotent(tenant, key)

    async def finish_idempotent(
        self,
        tenant: str,
        key: str,
        *,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
        ttl: float,
    ) -> None:
        await self.db.execute(
            "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?,"
            " expires_at = ? WHERE tenant = ? AND key = ?",
            (status, _json(dict(headers)), body, time.time() + ttl, tenant, key),
        )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        await self.db.execute(
            "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND state = 'running'",
            (tenant, key),
        )

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None:
        async with self.db.execute(
            "SELECT tenant, key, operation, fingerprint, state, status, headers, body"
            " FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at > ?",
            (tenant, key, time.time()),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        tenant, key, operation, fingerprint, state, status, headers, body = row
        return IdempotentRecord(
            tenant, key, operation, fingerprint, state, status, orjson.loads(headers or "{}"), body
        )

    async def record_event(self, event: Event) -> bool:
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO events (id, tenant, type, backend, occurred_at, data,"
            " dedupe_key, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.tenant,
                event.type,
                event.backend,
                event.occurred_at,
                _json(event.data),
                event.dedupe_key,
                _now(),
            ),
        )
        return cursor.rowcount == 1

    async def get_event(self, tenant: str, event_id: str) -> Event | None:
        async with self.db.execute(
            "SELECT id, type, tenant, backend, occurred_at, data, dedupe_key FROM events"
            " WHERE tenant = ? AND id = ?",
            (tenant, event_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _event(row) if row else None

    async def list_events(
        self, tenant: str, *, event_type: str | None, cursor: str | None, limit: int
    ) -> EventPage:
        after = int(cursor) if cursor and cursor.isdigit() else 0
        query = (
            "SELECT id, type, tenant, backend, occurred_at, data, dedupe_key, seq FROM events"
            " WHERE tenant = ? AND seq > ?"
        )
        args: list[object] = [tenant, after]
        if event_type:
            query += " AND type = ?"
            args.append(event_type)
        query += " ORDER BY seq LIMIT ?"
        args.append(limit + 1)
        async with self.db.execute(query, args) as rows:
            found = list(await rows.fetchall())
        more = len(found) > limit
        found = found[:limit]
        next_cursor = str(found[-1][7]) if more and found else None
        return EventPage([_event(row) for row in found], next_cursor)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _resource(row: Any) -> ResourceRecord:
    kind, resource_id, tenant, backend, parent_id, attributes, created_at, updated_at = row
    return ResourceRecord(
        kind,
        resource_id,
        tenant,
        backend,
        parent_id,
        orjson.loads(attributes),
        created_at,
        updated_at,
    )


def _event(row: aiosqlite.Row | tuple[object, ...]) -> Event:
    event_id, event_type, tenant, backend, occurred_at, data, dedupe_key = tuple(row)[:7]
    return Event(
        id=str(event_id),
        type=str(event_type),
        tenant=str(tenant),
        backend=None if backend is None else str(backend),
        occurred_at=str(occurred_at),
        data=orjson.loads(str(data)),
        dedupe_key=None if dedupe_key is None else str(dedupe_key),
    )
