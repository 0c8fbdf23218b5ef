"""The SQLite store: the embedded default, in WAL mode, migrated forward at start-up.

One connection, owned by one thread: every operation is a plain function run there in a single
hop. Writes are group-committed: operations queued while a commit is under way are run together in
the next transaction, each inside its own savepoint (one failing does not undo the others), and
none returns before its transaction committed. With `synchronous=FULL` a commit survives a crash of
the machine, not only of the process, before the gateway answers 2xx for what it stored.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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
    Position,
    ResourceRecord,
    Subscription,
    SubscriptionChanges,
    SubscriptionPage,
)
from gateway.store.rows import (
    DELIVERY as _DELIVERY,
    DELIVERY_JOINED as _DELIVERY_JOINED,
    EVENT as _EVENT,
    RESOURCE as _RESOURCE,
    SUBSCRIPTION as _SUBSCRIPTION,
    claimed as _claimed,
    delivery as _delivery,
    event as _event,
    page as _page,
    resource as _resource,
    subscription as _subscription,
    to_json as _json,
)

MIGRATIONS = "gateway.store.migrations.sqlite"
T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]


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
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queued: list[tuple[Op, asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    # -- plumbing -------------------------------------------------------------------------------

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Reads run here, on a read-only connection of the event loop's thread: an indexed read
        from the page cache takes microseconds, less than the hop to the writer's thread."""
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return op(self._reader)

    async def _in_thread(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` on the writer's connection, in its thread."""
        if self._thread is None:
            raise RuntimeError("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, op, self.db)

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` in a transaction (shared with other writes queued meanwhile); its result
        once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((op, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                outcomes = await self._in_thread(
                    functools.partial(_run_batch, ops=[o for o, _ in batch])
                )
            except BaseException as exc:  # the thread is gone (closing): nothing committed
                outcomes = [(False, exc)] * len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, _create_private, self.path)
        self._db = await loop.run_in_executor(self._thread, _connect, self.path)
        await self._in_thread(_migrate)
        self._reader = _connect(self.path, read_only=True)

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._reader is not None:
            self._reader.close()
        if self._db is not None and self._thread is not None:
            await self._in_thread(lambda db: db.close())
            self._thread.shutdown(wait=True)
        self._db = None
        self._reader = None
        self._thread = None

    async def schema_version(self) -> int:
        row = await self._read(
            lambda db: db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        )
        return int(row[0]) if row and row[0] is not None else 0

    async def ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchone())

    def listen(self, wake: Callable[[], None]) -> None:
        """Nothing to do: one process uses the file, and it wakes its own workers."""

    # -- resources ------------------------------------------------------------------------------

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        return await self._read(lambda db: _get_resource(db, kind, resource_id))

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
        def op(db: sqlite3.Connection) -> ResourceRecord:
            now = _now()
            db.execute(
                "INSERT OR IGNORE INTO resources (kind, id, tenant, backend, parent_id, attributes,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, resource_id, tenant, backend, parent_id, _json(attributes or {}), now, now),
            )
            record = _get_resource(db, kind, resource_id)
            assert record is not None
            return record

        return await self._write(op)

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM resources WHERE kind = ? AND id = ? AND tenant = ?"
                " AND attributes = '{}'",
                (kind, resource_id, tenant),
            )
            return cursor.rowcount == 1

        return await self._write(op)

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        def op(db: sqlite3.Connection) -> ResourceRecord | None:
            db.execute(
                "UPDATE resources SET attributes = json_patch(attributes, ?), updated_at = ?"
                " WHERE kind = ? AND id = ?",
                (_json(attributes), _now(), kind, resource_id),
            )
            return _get_resource(db, kind, resource_id)

        return await self._write(op)

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        if not parent_ids:
            return []
        marks = ", ".join("?" * len(parent_ids))
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {_RESOURCE} FROM resources WHERE parent_id IN ({marks}) AND kind = ?"
                " AND tenant = ? ORDER BY created_at, id",
                (*parent_ids, kind, tenant),
            ).fetchall()
        )
        return [_resource(row) for row in rows]

    # -- idempotency keys -----------------------------------------------------------------------

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        def op(db: sqlite3.Connection) -> IdempotentRecord | None:
            now = time.time()
            db.execute(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at <= ?",
                (tenant, key, now),
            )
            cursor = db.execute(
                "INSERT OR IGNORE INTO idempotency_keys (tenant, key, operation, fingerprint,"
                " state, created_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (tenant, key, operation, fingerprint, _now(), now + lease),
            )
            return None if cursor.rowcount == 1 else _get_idempotent(db, tenant, key)

        return await self._write(op)

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
        await self._write(
            lambda db: db.execute(
                "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?,"
                " expires_at = ? WHERE tenant = ? AND key = ?",
                (status, _json(dict(headers)), body, time.time() + ttl, tenant, key),
            )
        )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        await self._write(
            lambda db: db.execute(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND state = 'running'",
                (tenant, key),
            )
        )

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None:
        return await self._read(lambda db: _get_idempotent(db, tenant, key))

    # -- events ---------------------------------------------------------------------------------

    async def record_event(
        self, event: Event, *, dedupe_window: float, only_subscription: str | None = None
    ) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            now = time.time()
            if event.dedupe_key is not None:
                seen = db.execute(
                    "SELECT 1 FROM events WHERE tenant = ? AND dedupe_key = ?"
                    " AND received_epoch > ? LIMIT 1",
                    (event.tenant, event.dedupe_key, now - dedupe_window),
                ).fetchone()
                if seen is not None:
                    return False
            db.execute(
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
                subscriptions = _subscriptions(db, event.tenant, enabled_only=True)
                targets = [s.id for s in subscriptions if s.matches(event.type)]
            _queue(db, event.id, event.tenant, targets, now)
            return True

        return await self._write(op)

    async def get_event(self, tenant: str, event_id: str) -> Event | None:
        row = await self._read(
            lambda db: db.execute(
                f"SELECT {_EVENT} FROM events WHERE tenant = ? AND id = ?", (tenant, event_id)
            ).fetchone()
        )
        return _event(row) if row else None

    async def list_events(
        self, tenant: str, *, event_type: str | None, after: Position | None, limit: int
    ) -> EventPage:
        # Newest first: a later page continues below the position the last one ended at.
        query = f"SELECT {_EVENT}, seq FROM events WHERE tenant = ?"
        args: list[object] = [tenant]
        if after is not None:
            query += " AND seq < ?"
            args.append(after.seq)
        if event_type:
            query += " AND type = ?"
            args.append(event_type)
        query += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        found = await self._read(lambda db: db.execute(query, args).fetchall())
        rows, next_position = _page(found, limit)
        return EventPage([_event(row) for row in rows], next_position)

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self, subscription: Subscription, *, limit: int | None = None
    ) -> bool:
        s = subscription

        def op(db: sqlite3.Connection) -> bool:
            if limit is not None:
                row = db.execute(
                    "SELECT COUNT(*) FROM subscriptions WHERE tenant = ?", (s.tenant,)
                ).fetchone()
                if row[0] >= limit:
                    return False
            db.execute(
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
            return True

        return await self._write(op)

    async def get_subscription(self, tenant: str, subscription_id: str) -> Subscription | None:
        return await self._read(lambda db: _get_subscription(db, subscription_id, tenant))

    async def list_subscriptions(
        self, tenant: str, *, after: Position | None, limit: int
    ) -> SubscriptionPage:
        found = await self._read(
            lambda db: db.execute(
                f"SELECT {_SUBSCRIPTION}, seq FROM subscriptions WHERE tenant = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (tenant, after.seq if after else 0, limit + 1),
            ).fetchall()
        )
        rows, next_position = _page(found, limit)
        return SubscriptionPage([_subscription(row) for row in rows], next_position)

    async def update_subscription(
        self, tenant: str, subscription_id: str, changes: SubscriptionChanges
    ) -> Subscription | None:
        sets = [f"{name} = ?" for name, _ in changes.items()]
        values = [_json(list(v)) if isinstance(v, tuple) else v for _, v in changes.items()]
        if changes.enabled is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]

        def op(db: sqlite3.Connection) -> Subscription | None:
            db.execute(
                f"UPDATE subscriptions SET {', '.join([*sets, 'updated_at = ?'])}"
                " WHERE tenant = ? AND id = ?",
                (*values, _now(), tenant, subscription_id),
            )
            return _get_subscription(db, subscription_id, tenant)

        return await self._write(op)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, subscription_id)
            )
            if cursor.rowcount:
                _fail_undelivered(db, subscription_id, "subscription deleted")
            return bool(cursor.rowcount)

        return await self._write(op)

    async def disable_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        def op(db: sqlite3.Connection) -> Subscription | None:
            cursor = db.execute(
                "UPDATE subscriptions SET enabled = 0, disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND enabled = 1",
                (reason, _now(), subscription_id),
            )
            if not cursor.rowcount:
                return None
            _fail_undelivered(db, subscription_id, f"subscription disabled: {reason}")
            return _get_subscription(db, subscription_id)

        return await self._write(op)

    # -- deliveries -----------------------------------------------------------------------------

    async def claim_deliveries(
        self,
        *,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        exclude: Sequence[str],
        per_tenant: int | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> Sequence[ClaimedDelivery]:
        skip = ",".join("?" * len(exclude))
        most = limit if per_tenant is None else per_tenant
        in_flight = busy or {}

        def op(db: sqlite3.Connection) -> list[ClaimedDelivery]:
            # Leases that ended (a dead worker's): few, whoever's they are.
            due: dict[str, list[tuple[float, str]]] = {}
            for tenant, delivery_id, next_at in db.execute(
                "SELECT tenant, id, next_attempt_at FROM deliveries WHERE status = 'delivering'"
                f" AND lease_until < ? AND subscription_id NOT IN ({skip})",
                (now, *exclude),
            ):
                due.setdefault(tenant, []).append((next_at or 0.0, delivery_id))
            tenants = {row[0] for row in db.execute("SELECT DISTINCT tenant FROM subscriptions")}
            turns: list[tuple[int, float, str]] = []
            for tenant in tenants | due.keys():
                room = min(limit, most - in_flight.get(tenant, 0))
                if room <= 0:
                    continue
                pending = db.execute(
                    "SELECT next_attempt_at, id FROM deliveries WHERE tenant = ?"
                    " AND status = 'pending' AND next_attempt_at <= ?"
                    f" AND subscription_id NOT IN ({skip}) ORDER BY next_attempt_at LIMIT ?",
                    (tenant, now, *exclude, room),
                ).fetchall()
                oldest = sorted([*due.get(tenant, ()), *pending])[:room]
                turns.extend((turn, at, i) for turn, (at, i) in enumerate(oldest))
            ids = [delivery_id for _, _, delivery_id in sorted(turns)[:limit]]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            db.execute(
                "UPDATE deliveries SET status = 'delivering', lease_owner = ?, lease_until = ?,"
                f" updated_at = ? WHERE id IN ({marks})",
                (owner, now + lease, now, *ids),
            )
            rows = db.execute(
                f"SELECT {_DELIVERY_JOINED} FROM deliveries d"
                " JOIN events e ON e.id = d.event_id"
                " JOIN subscriptions s ON s.id = d.subscription_id"
                f" WHERE d.id IN ({marks})",
                ids,
            ).fetchall()
            return [_claimed(row) for row in rows]

        return await self._write(op)

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        if outcomes:
            await self._write(lambda db: _complete(db, outcomes, now))

    async def list_deliveries(self, tenant: str, event_id: str) -> Sequence[Delivery]:
        return await self._read(lambda db: _list_deliveries(db, tenant, event_id))

    async def redeliver(
        self, tenant: str, event_id: str, subscription_id: str | None
    ) -> Sequence[Delivery]:
        def op(db: sqlite3.Connection) -> list[Delivery]:
            row = db.execute(
                "SELECT type FROM events WHERE tenant = ? AND id = ?", (tenant, event_id)
            ).fetchone()
            if row is None:
                return []
            targets = [
                s.id
                for s in _subscriptions(db, tenant, enabled_only=True)
                if (s.id == subscription_id if subscription_id else s.matches(row[0]))
            ]
            ids = set(_queue(db, event_id, tenant, targets, time.time()))
            return [d for d in _list_deliveries(db, tenant, event_id) if d.id in ids]

        return await self._write(op)

    async def queue_depth(self) -> int:
        row = await self._read(
            lambda db: db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering')"
            ).fetchone()
        )
        return int(row[0]) if row else 0


# -- run in the store's thread --------------------------------------------------------------------


def _create_private(path: Path) -> None:
    """Create the database's folder (0700) and file (0600) if missing, whatever the umask: it holds
    webhook secrets. SQLite gives its -wal and -shm files the database file's mode."""
    try:
        path.parent.mkdir(parents=True)
    except FileExistsError:
        pass  # an operator's folder keeps its mode
    else:
        path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # an existing database keeps the mode its operator gave it
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    if read_only:
        db.execute("PRAGMA query_only=1")
    else:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TEXT NOT NULL)"
    )
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    current = row[0] if row else 0
    for version, script in migrations():
        if version <= current:
            continue
        # One transaction per migration: a crash leaves the schema at a known version.
        db.executescript(
            f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version}, '{_now()}');"
            "\nCOMMIT;"
        )


def _run_batch(db: sqlite3.Connection, ops: Sequence[Op]) -> list[tuple[bool, Any]]:
    """One transaction, one savepoint per operation; results (ok, value or exception)."""
    outcomes: list[tuple[bool, Any]] = []
    try:
        db.execute("BEGIN IMMEDIATE")
        for op in ops:
            db.execute("SAVEPOINT op")
            try:
                value = op(db)
            except Exception as exc:
                db.execute("ROLLBACK TO op")
                db.execute("RELEASE op")
                outcomes.append((False, exc))
            else:
                db.execute("RELEASE op")
                outcomes.append((True, value))
        db.execute("COMMIT")
    except Exception as exc:  # the transaction itself failed: nothing of it is durable
        if db.in_transaction:
            db.execute("ROLLBACK")
        return [(False, exc)] * len(ops)
    return outcomes


def _get_resource(db: sqlite3.Connection, kind: str, resource_id: str) -> ResourceRecord | None:
    row = db.execute(
        f"SELECT {_RESOURCE} FROM resources WHERE kind = ? AND id = ?", (kind, resource_id)
    ).fetchone()
    return _resource(row) if row else None


def _get_idempotent(db: sqlite3.Connection, tenant: str, key: str) -> IdempotentRecord | None:
    row = db.execute(
        "SELECT tenant, key, operation, fingerprint, state, status, headers, body"
        " FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at > ?",
        (tenant, key, time.time()),
    ).fetchone()
    if row is None:
        return None
    tenant, key, operation, fingerprint, state, status, headers, body = row
    return IdempotentRecord(
        tenant, key, operation, fingerprint, state, status, orjson.loads(headers or "{}"), body
    )


def _subscriptions(
    db: sqlite3.Connection, tenant: str, *, enabled_only: bool
) -> list[Subscription]:
    query = f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE tenant = ?"
    if enabled_only:
        query += " AND enabled = 1"
    return [_subscription(row) for row in db.execute(query + " ORDER BY seq", (tenant,))]


def _get_subscription(
    db: sqlite3.Connection, subscription_id: str, tenant: str | None = None
) -> Subscription | None:
    row = db.execute(
        f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE id = ?", (subscription_id,)
    ).fetchone()
    if row is None:
        return None
    found = _subscription(row)
    return found if tenant is None or found.tenant == tenant else None


def _queue(
    db: sqlite3.Connection, event_id: str, tenant: str, subscription_ids: Sequence[str], now: float
) -> list[str]:
    ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
    db.executemany(
        "INSERT INTO deliveries (id, event_id, subscription_id, tenant, status, attempts,"
        " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        [
            (delivery_id, event_id, subscription_id, tenant, now, now, now)
            for delivery_id, subscription_id in zip(ids, subscription_ids, strict=True)
        ],
    )
    return ids


def _fail_undelivered(db: sqlite3.Connection, subscription_id: str, reason: str) -> None:
    db.execute(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?,"
        " lease_owner = NULL, lease_until = NULL, updated_at = ?"
        " WHERE subscription_id = ? AND status IN ('pending', 'delivering')",
        (reason, time.time(), subscription_id),
    )


def _complete(db: sqlite3.Connection, outcomes: Sequence[AttemptOutcome], now: float) -> None:
    made = [(o, o.attempt) for o in outcomes if o.attempt is not None]
    handed_back = [o.delivery_id for o in outcomes if o.attempt is None]
    db.executemany(
        "INSERT OR REPLACE INTO attempts (delivery_id, number, at, status, duration_ms,"
        " error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(o.delivery_id, *attrs.astuple(a)) for o, a in made],
    )
    # Only a delivery still leased moves on: one failed by a disable stays failed.
    db.executemany(
        "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
        " lease_owner = NULL, lease_until = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'delivering'",
        [(o.status, a.number, o.next_attempt_at, a.error, now, o.delivery_id) for o, a in made],
    )
    db.executemany(
        "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
        " updated_at = ? WHERE id = ? AND status = 'delivering'",
        [(now, delivery_id) for delivery_id in handed_back],
    )
    db.executemany(
        "UPDATE subscriptions SET failing_since = CASE WHEN ? THEN NULL"
        " ELSE COALESCE(failing_since, ?) END WHERE id = ?",
        [(o.subscription_succeeded, now, o.subscription_id) for o, _ in made],
    )


def _list_deliveries(db: sqlite3.Connection, tenant: str, event_id: str) -> list[Delivery]:
    deliveries = [
        _delivery(row)
        for row in db.execute(
            f"SELECT {_DELIVERY} FROM deliveries WHERE tenant = ? AND event_id = ?"
            " ORDER BY created_at, id",
            (tenant, event_id),
        )
    ]
    if not deliveries:
        return []
    marks = ",".join("?" * len(deliveries))
    attempts: dict[str, list[Attempt]] = {}
    for row in db.execute(
        "SELECT delivery_id, number, at, status, duration_ms, error, response_excerpt"
        f" FROM attempts WHERE delivery_id IN ({marks}) ORDER BY number",
        [d.id for d in deliveries],
    ):
        attempts.setdefault(row[0], []).append(Attempt(*row[1:]))
    return [attrs.evolve(d, attempt_log=tuple(attempts.get(d.id, ()))) for d in deliveries]
