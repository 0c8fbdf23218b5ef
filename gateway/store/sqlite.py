"""The SQLite store: the embedded default, in WAL mode, migrated forward at start-up.

One connection (aiosqlite runs it on its own thread). Writes take `_lock`, so that a transaction of
one coroutine never swallows another's statement; `synchronous=FULL` makes a commit survive a crash
of the machine, not only of the process, before the gateway answers 2xx for what it stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
import orjson

from gateway.backend import Event
from gateway.store import (
    Attempt,
    AttemptOutcome,
    ClaimedDelivery,
    Delivery,
    EventPage,
    IdempotentRecord,
    ResourceRecord,
    Subscription,
    SubscriptionPage,
)

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
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=FULL")
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

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time, committed on exit, rolled back on error."""
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

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
        async with self._write() as db:
            await db.execute(
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
        async with self._write() as db:
            await db.execute(
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
        async with self._write() as db:
            await db.execute(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at <= ?",
                (tenant, key, now),
            )
            cursor = await db.execute(
                "INSERT OR IGNORE INTO idempotency_keys (tenant, key, operation, fingerprint,"
                " state, created_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
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
        async with self._write() as db:
            await db.execute(
                "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?,"
                " expires_at = ? WHERE tenant = ? AND key = ?",
                (status, _json(dict(headers)), body, time.time() + ttl, tenant, key),
            )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        async with self._write() as db:
            await db.execute(
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

    async def record_event(
        self, event: Event, *, dedupe_window: float, only_subscription: str | None = None
    ) -> bool:
        now = time.time()
        async with self._write() as db:
            if event.dedupe_key is not None:
                async with db.execute(
                    "SELECT 1 FROM events WHERE tenant = ? AND dedupe_key = ?"
                    " AND received_epoch > ? LIMIT 1",
                    (event.tenant, event.dedupe_key, now - dedupe_window),
                ) as cursor:
                    if await cursor.fetchone() is not None:
                        return False
            await db.execute(
                "INSERT INTO events (id, tenant, type, backend, occurred_at, data, dedupe_key,"
                " received_at, received_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.tenant,
                    event.type,
                    event.backend,
                    event.occurred_at,
                    _json(event.data),
                    event.dedupe_key,
                    _now(),
                    now,
                ),
            )
            if only_subscription is not None:
                targets = [only_subscription]
            else:
                subscriptions = await self._subscriptions(db, event.tenant, enabled_only=True)
                targets = [s.id for s in subscriptions if s.matches(event.type)]
            await self._queue(db, event.id, event.tenant, targets, now)
        return True

    async def _queue(
        self,
        db: aiosqlite.Connection,
        event_id: str,
        tenant: str,
        subscription_ids: Sequence[str],
        now: float,
    ) -> list[str]:
        ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
        await db.executemany(
            "INSERT INTO deliveries (id, event_id, subscription_id, tenant, status, attempts,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            [
                (delivery_id, event_id, subscription_id, tenant, now, now, now)
                for delivery_id, subscription_id in zip(ids, subscription_ids, strict=True)
            ],
        )
        return ids

    async def _subscriptions(
        self, db: aiosqlite.Connection, tenant: str, *, enabled_only: bool
    ) -> list[Subscription]:
        query = f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE tenant = ?"
        if enabled_only:
            query += " AND enabled = 1"
        async with db.execute(query + " ORDER BY seq", (tenant,)) as cursor:
            return [_subscription(row) for row in await cursor.fetchall()]

    async def create_subscription(self, subscription: Subscription) -> None:
        s = subscription
        async with self._write() as db:
            await db.execute(
                "INSERT INTO subscriptions (id, tenant, url, event_types, description, enabled,"
                " disabled_reason, secret, previous_secret, previous_expires_at, failing_since,"
                " seq, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT COALESCE(MAX(seq), 0) + 1 FROM subscriptions), ?, ?)",
                (
                    s.id,
                    s.tenant,
                    s.url,
                    _json(list(s.event_types)),
                    s.description,
                    int(s.enabled),
                    s.disabled_reason,
                    s.secret,
                    s.previous_secret,
                    s.previous_expires_at,
                    s.failing_since,
                    s.created_at,
                    s.updated_at,
                ),
            )

    async def get_subscription(self, tenant: str, subscription_id: str) -> Subscription | None:
        async with self.db.execute(
            f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE tenant = ? AND id = ?",
            (tenant, subscription_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _subscription(row) if row else None

    async def list_subscriptions(
        self, tenant: str, *, cursor: str | None, limit: int
    ) -> SubscriptionPage:
        after = int(cursor) if cursor and cursor.isdigit() else 0
        async with self.db.execute(
            f"SELECT {_SUBSCRIPTION}, seq FROM subscriptions WHERE tenant = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (tenant, after, limit + 1),
        ) as rows:
            found = list(await rows.fetchall())
        more = len(found) > limit
        found = found[:limit]
        next_cursor = str(found[-1][-1]) if more and found else None
        return SubscriptionPage([_subscription(row[:-1]) for row in found], next_cursor)

    async def update_subscription(
        self, tenant: str, subscription_id: str, changes: Mapping[str, Any]
    ) -> Subscription | None:
        columns: dict[str, Callable[[Any], Any]] = {
            "url": lambda v: v,
            "event_types": lambda v: _json(list(v)),
            "description": lambda v: v,
            "enabled": int,
            "secret": lambda v: v,
            "previous_secret": lambda v: v,
            "previous_expires_at": lambda v: v,
        }
        sets = [f"{name} = ?" for name in changes if name in columns]
        values = [columns[name](value) for name, value in changes.items() if name in columns]
        if changes.get("enabled") is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]
        async with self._write() as db:
            await db.execute(
                f"UPDATE subscriptions SET {', '.join([*sets, 'updated_at = ?'])}"
                " WHERE tenant = ? AND id = ?",
                (*values, _now(), tenant, subscription_id),
            )
        return await self.get_subscription(tenant, subscription_id)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, subscription_id)
            )
            if cursor.rowcount:
                await self._fail_undelivered(db, subscription_id, "subscription deleted")
        return bool(cursor.rowcount)

    async def disable_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE subscriptions SET enabled = 0, disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND enabled = 1",
                (reason, _now(), subscription_id),
            )
            if not cursor.rowcount:
                return None
            await self._fail_undelivered(db, subscription_id, f"subscription disabled: {reason}")
            async with db.execute(
                f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE id = ?", (subscription_id,)
            ) as rows:
                row = await rows.fetchone()
        return _subscription(row) if row else None

    async def _fail_undelivered(
        self, db: aiosqlite.Connection, subscription_id: str, reason: str
    ) -> None:
        await db.execute(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?,"
            " lease_owner = NULL, lease_until = NULL, updated_at = ?"
            " WHERE subscription_id = ? AND status IN ('pending', 'delivering')",
            (reason, time.time(), subscription_id),
        )

    async def claim_deliveries(
        self, *, owner: str, now: float, lease: float, limit: int, exclude: Sequence[str]
    ) -> Sequence[ClaimedDelivery]:
        skip = ",".join("?" * len(exclude))
        async with self._write() as db:
            async with db.execute(
                "UPDATE deliveries SET status = 'delivering', lease_owner = ?, lease_until = ?,"
                " updated_at = ? WHERE id IN (SELECT id FROM deliveries WHERE"
                " ((status = 'pending' AND next_attempt_at <= ?)"
                " OR (status = 'delivering' AND lease_until < ?))"
                f" AND subscription_id NOT IN ({skip}) ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id",
                (owner, now + lease, now, now, now, *exclude, limit),
            ) as cursor:
                ids = [row[0] for row in await cursor.fetchall()]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            async with db.execute(
                f"SELECT {_DELIVERY_JOINED} FROM deliveries d"
                " JOIN events e ON e.id = d.event_id"
                " JOIN subscriptions s ON s.id = d.subscription_id"
                f" WHERE d.id IN ({marks})",
                ids,
            ) as cursor:
                rows = await cursor.fetchall()
        return [_claimed(row) for row in rows]

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        if not outcomes:
            return
        made = [(o, o.attempt) for o in outcomes if o.attempt is not None]
        handed_back = [o.delivery_id for o in outcomes if o.attempt is None]
        async with self._write() as db:
            await db.executemany(
                "INSERT OR REPLACE INTO attempts (delivery_id, number, at, status, duration_ms,"
                " error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(o.delivery_id, *attrs.astuple(a)) for o, a in made],
            )
            # Only a delivery still leased moves on: one failed by a disable stays failed.
            await db.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?,"
                " last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND status = 'delivering'",
                [
                    (o.status, a.number, o.next_attempt_at, a.error, now, o.delivery_id)
                    for o, a in made
                ],
            )
            await db.executemany(
                "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
                " updated_at = ? WHERE id = ? AND status = 'delivering'",
                [(now, delivery_id) for delivery_id in handed_back],
            )
            await db.executemany(
                "UPDATE subscriptions SET failing_since = CASE WHEN ? THEN NULL"
                " ELSE COALESCE(failing_since, ?) END WHERE id = ?",
                [(o.subscription_succeeded, now, o.subscription_id) for o, _ in made],
            )

    async def list_deliveries(self, tenant: str, event_id: str) -> Sequence[Delivery]:
        async with self.db.execute(
            f"SELECT {_DELIVERY} FROM deliveries WHERE tenant = ? AND event_id = ?"
            " ORDER BY created_at, id",
            (tenant, event_id),
        ) as cursor:
            deliveries = [_delivery(row) for row in await cursor.fetchall()]
        if not deliveries:
            return []
        marks = ",".join("?" * len(deliveries))
        async with self.db.execute(
            "SELECT delivery_id, number, at, status, duration_ms, error, response_excerpt"
            f" FROM attempts WHERE delivery_id IN ({marks}) ORDER BY number",
            [d.id for d in deliveries],
        ) as cursor:
            attempts: dict[str, list[Attempt]] = {}
            for row in await cursor.fetchall():
                attempts.setdefault(row[0], []).append(Attempt(*row[1:]))
        return [attrs.evolve(d, attempt_log=tuple(attempts.get(d.id, ()))) for d in deliveries]

    async def redeliver(
        self, tenant: str, event_id: str, subscription_id: str | None
    ) -> Sequence[Delivery]:
        event = await self.get_event(tenant, event_id)
        if event is None:
            return []
        now = time.time()
        async with self._write() as db:
            subscriptions = await self._subscriptions(db, tenant, enabled_only=True)
            targets = [
                s.id
                for s in subscriptions
                if (s.id == subscription_id if subscription_id else s.matches(event.type))
            ]
            ids = await self._queue(db, event_id, tenant, targets, now)
        return [d for d in await self.list_deliveries(tenant, event_id) if d.id in ids]

    async def queue_depth(self) -> int:
        async with self.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering')"
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

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


_SUBSCRIPTION = (
    "id, tenant, url, event_types, description, enabled, disabled_reason, secret,"
    " previous_secret, previous_expires_at, failing_since, created_at, updated_at"
)
_DELIVERY = (
    "id, event_id, subscription_id, tenant, status, attempts, next_attempt_at, last_error,"
    " created_at"
)
_DELIVERY_JOINED = (
    "d.id, d.event_id, d.subscription_id, d.tenant, d.status, d.attempts, d.next_attempt_at,"
    " d.last_error, d.created_at,"
    " e.id, e.type, e.tenant, e.backend, e.occurred_at, e.data, e.dedupe_key, e.received_epoch,"
    " s.id, s.tenant, s.url, s.event_types, s.description, s.enabled, s.disabled_reason,"
    " s.secret, s.previous_secret, s.previous_expires_at, s.failing_since, s.created_at,"
    " s.updated_at"
)


def _subscription(row: Any) -> Subscription:
    (sid, tenant, url, types, description, enabled, reason, secret, previous, expires, failing,
     created, updated) = row  # fmt: skip
    return Subscription(
        sid, tenant, url, tuple(orjson.loads(types)), description, bool(enabled), reason,
        secret, previous, expires, failing, created, updated,
    )  # fmt: skip


def _delivery(row: Any) -> Delivery:
    return Delivery(*row)


def _claimed(row: Any) -> ClaimedDelivery:
    return ClaimedDelivery(
        delivery=_delivery(row[:9]),
        event=_event(row[9:16]),
        subscription=_subscription(row[17:]),
        event_received=float(row[16]),
    )


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
