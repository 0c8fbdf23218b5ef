"""The PostgreSQL store: several gateway processes or replicas on one database.

The same schema (numbered migrations, applied under an advisory lock so that replicas starting
together migrate once) and the same behaviour as the SQLite store, which is the reference. A pool of
connections and one transaction per operation; what must hold across replicas is made atomic in the
database: deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leases, a callback's
de-duplication check and insert run under a transaction-scoped advisory lock on (tenant, dedupe
key), idempotency keys are claimed with `INSERT ... ON CONFLICT DO NOTHING`. Transactions that
queue deliveries `NOTIFY` a channel that every process `LISTEN`s on, so idle workers wake
at once rather than polling fast.

A lost connection or a server that is down raises `StoreUnavailable` (answered 503); the pool
reconnects by itself when the server is back. PostgreSQL 13 or later (`gen_random_uuid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import attrs
import orjson
import structlog

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
    StoreUnavailable,
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

MIGRATIONS = "gateway.store.migrations.postgres"
CHANNEL = "gateway_deliveries"
MIGRATION_LOCK = 0x6761_7465_7761_79  # "gateway": one bigint key, apart from the two-int keys
DEDUPE_LOCK_CLASS = 1  # pg_advisory_xact_lock(class, hash) for (tenant, dedupe key)
SUBSCRIPTIONS_LOCK_CLASS = 2  # the same for a tenant's subscription count
CONNECT_TIMEOUT = 5.0
ACQUIRE_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
RETRIES = 3  # a transaction that lost a deadlock or serialization race is run again
LISTEN_KEEPALIVE = 5.0  # the listening connection is checked this often
LISTEN_BACKOFF = (0.1, 2.0)  # first and longest wait before reconnecting it

T = TypeVar("T")
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
Op: TypeAlias = "Callable[[Conn], Awaitable[T]]"

log = structlog.get_logger("gateway.store")

# The server is down, restarting, or the connection to it was lost.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts, in order (the same numbers as SQLite's)."""
    found = []
    for entry in resources.files(MIGRATIONS).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    # The class name only: a driver's message may quote the connection string.
    return StoreUnavailable(f"the database is unreachable ({type(exc).__name__})")


def _lost(conn: Conn, exc: Exception) -> bool:
    """The connection is closed, or the pool already took it back (it does with one it found
    closed), or the driver lost track of its protocol state (then it is dropped here)."""
    try:
        if conn.is_closed():
            return True
    except asyncpg.InterfaceError:
        return True
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        conn.terminate()
        return True
    return False


class PostgresStore:
    def __init__(self, dsn: str, *, password: str | None = None, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._password = password
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._wakers: list[Callable[[], None]] = []
        # Sent with this store's notifications, so that its own listener skips them: this
        # process wakes its own workers directly, and a lease it hands back is for the others.
        self._origin = uuid.uuid4().hex
        self._listener: asyncio.Task[None] | None = None

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, op: Op[T], *, transaction: bool = True) -> T:
        """Run `op` on a pooled connection, in a transaction unless it is one statement (atomic
        by itself: two round trips fewer); its result once committed. Connection trouble becomes
        `StoreUnavailable`."""
        for attempt in range(RETRIES):
            try:
                conn = await self.pool.acquire(timeout=ACQUIRE_TIMEOUT)
            except _UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
            try:
                if not transaction:
                    return await op(conn)
                async with conn.transaction():
                    return await op(conn)
            except asyncpg.exceptions.TransactionRollbackError:
                if attempt == RETRIES - 1:
                    raise
            except _UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
            except (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError) as exc:
                # The server went away under the connection (the driver notices in one of these
                # ways): the pool makes a new one. Any other is a bug.
                if not _lost(conn, exc):
                    raise
                raise _unavailable(exc) from exc
            finally:
                # A connection that broke once the operation was over: the pool drops it, and
                # what was committed stays committed.
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)
        raise AssertionError("unreachable")

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(self._dsn, password=self._password, timeout=CONNECT_TIMEOUT)

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                password=self._password,
                min_size=0,  # connections are made when needed: none to restore while it is down
                max_size=self._pool_size,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                reset=_keep_session,
            )
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        await self._run(_migrate)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except (TimeoutError, *_UNAVAILABLE):
                self._pool.terminate()
        self._pool = None

    async def schema_version(self) -> int:
        value = await self._run(
            lambda db: db.fetchval("SELECT MAX(version) FROM schema_migrations"), transaction=False
        )
        return int(value or 0)

    async def ping(self) -> None:
        await self._run(lambda db: db.fetchval("SELECT 1"), transaction=False)

    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` when any process queues deliveries (and after each reconnect, for what
        was queued while not listening)."""
        self._wakers.append(wake)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_loop(), name="store-listen")

    def _notified(self, _: object, __: int, ___: str, origin: object) -> None:
        if origin != self._origin:
            self._wake()

    def _wake(self) -> None:
        for wake in self._wakers:
            wake()

    async def _listen_loop(self) -> None:
        backoff = LISTEN_BACKOFF[0]
        while True:
            try:
                conn = await self._connect()
            except Exception as exc:  # down, or refusing: the workers' polling covers meanwhile
                log.debug("store.listen_retry", error=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, LISTEN_BACKOFF[1])
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(functools.partial(_set_when_closed, lost))
            try:
                await conn.add_listener(CHANNEL, self._notified)
                backoff = LISTEN_BACKOFF[0]
                self._wake()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LISTEN_KEEPALIVE):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # a half-open connection shows here
            except Exception as exc:  # whatever it was, listen again on a new connection
                log.info("store.listen_lost", error=type(exc).__name__)
            finally:
                conn.terminate()
            await asyncio.sleep(backoff)

    # -- resources ------------------------------------------------------------------------------

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        return await self._run(lambda db: _get_resource(db, kind, resource_id), transaction=False)

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
        async def op(db: Conn) -> ResourceRecord:
            now = _now()
            await db.execute(
                "INSERT INTO resources (kind, id, tenant, backend, parent_id, attributes,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT DO NOTHING",
                kind,
                resource_id,
                tenant,
                backend,
                parent_id,
                _json(attributes or {}),
                now,
                now,
            )
            record = await _get_resource(db, kind, resource_id)
            assert record is not None
            return record

        return await self._run(op)

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        async def op(db: Conn) -> bool:
            deleted = await db.fetchval(
                "DELETE FROM resources WHERE kind = $1 AND id = $2 AND tenant = $3"
                " AND attributes = '{}'::jsonb RETURNING 1",
                kind,
                resource_id,
                tenant,
            )
            return bool(deleted)

        return await self._run(op)

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        async def op(db: Conn) -> ResourceRecord | None:
            current = await db.fetchval(
                "SELECT attributes FROM resources WHERE kind = $1 AND id = $2 FOR UPDATE",
                kind,
                resource_id,
            )
            if current is None:
                return None
            merged = merge_patch(orjson.loads(current), dict(attributes))
            await db.execute(
                "UPDATE resources SET attributes = $1, updated_at = $2 WHERE kind = $3 AND id = $4",
                _json(merged),
                _now(),
                kind,
                resource_id,
            )
            return await _get_resource(db, kind, resource_id)

        return await self._run(op)

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        if not parent_ids:
            return []
        rows = await self._run(
            lambda db: db.fetch(
                f"SELECT {_RESOURCE} FROM resources WHERE parent_id = ANY($1::text[]) AND kind = $2"
                ' AND tenant = $3 ORDER BY created_at COLLATE "C", id COLLATE "C"',
                list(parent_ids),
                kind,
                tenant,
            ),
            transaction=False,
        )
        return [_resource(row) for row in rows]

    # -- idempotency keys -----------------------------------------------------------------------

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        async def op(db: Conn) -> IdempotentRecord | None:
            now = time.time()
            await db.execute(
                "DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND expires_at <= $3",
                tenant,
                key,
                now,
            )
            # Another replica's claim in flight: ON CONFLICT waits for it, then sees it.
            claimed = await db.fetchval(
                "INSERT INTO idempotency_keys (tenant, key, operation, fingerprint, state,"
                " created_at, expires_at) VALUES ($1, $2, $3, $4, 'running', $5, $6)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                tenant,
                key,
                operation,
                fingerprint,
                _now(),
                now + lease,
            )
            return None if claimed else await _get_idempotent(db, tenant, key)

        return await self._run(op)

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
        await self._run(
            lambda db: db.execute(
                "UPDATE idempotency_keys SET state = 'done', status = $1, headers = $2, body = $3,"
                " expires_at = $4 WHERE tenant = $5 AND key = $6",
                status,
                _json(dict(headers)),
                body,
                time.time() + ttl,
                tenant,
                key,
            ),
            transaction=False,
        )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND state = 'running'",
                tenant,
                key,
            ),
            transaction=False,
        )

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None:
        return await self._run(lambda db: _get_idempotent(db, tenant, key), transaction=False)

    # -- events ---------------------------------------------------------------------------------

    async def record_event(
        self, event: Event, *, dedupe_window: float, only_subscription: str | None = None
    ) -> bool:
        async def op(db: Conn) -> bool:
            if event.dedupe_key is not None:
                # Check and insert as one step across replicas: the same callback received by
                # two of them at once is stored once. The lock is its own statement so that the
                # check after it sees what the lock's previous holder committed.
                await db.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    DEDUPE_LOCK_CLASS,
                    f"{len(event.tenant)}:{event.tenant}:{event.dedupe_key}",
                )
            now = time.time()
            stored = await db.fetchval(
                "INSERT INTO events (id, tenant, type, backend, occurred_at, data, dedupe_key,"
                " received_at, received_epoch) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9"
                " WHERE $7::text IS NULL OR NOT EXISTS (SELECT 1 FROM events WHERE tenant = $2"
                " AND dedupe_key = $7 AND received_epoch > $10) RETURNING 1",
                event.id,
                event.tenant,
                event.type,
                event.backend,
                event.occurred_at,
                _json(event.data),
                event.dedupe_key,
                _now(),
                now,
                now - dedupe_window,
            )
            if not stored:
                return False
            if only_subscription is not None:
                await _queue(db, event.id, event.tenant, [only_subscription], now, self._origin)
            else:
                # Subscription.matches, in SQL: one statement queues them all.
                await db.execute(
                    "WITH queued AS (INSERT INTO deliveries (id, event_id, subscription_id,"
                    " tenant, status, attempts, next_attempt_at, created_at, updated_at)"
                    " SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), $1, id,"
                    " tenant, 'pending', 0, $4, $4, $4 FROM subscriptions WHERE tenant = $2"
                    " AND enabled AND (event_types ? '*' OR event_types ? $3) RETURNING 1)"
                    f" {_notify_if_queued(5)}",
                    event.id,
                    event.tenant,
                    event.type,
                    now,
                    self._origin,
                )
            return True

        return await self._run(op)

    async def get_event(self, tenant: str, event_id: str) -> Event | None:
        row = await self._run(
            lambda db: db.fetchrow(
                f"SELECT {_EVENT} FROM events WHERE tenant = $1 AND id = $2", tenant, event_id
            ),
            transaction=False,
        )
        return _event(row) if row else None

    async def list_events(
        self, tenant: str, *, event_type: str | None, after: Position | None, limit: int
    ) -> EventPage:
        # Newest first: a later page continues below the position the last one ended at.
        query = f"SELECT {_EVENT}, seq FROM events WHERE tenant = $1"
        args: list[object] = [tenant]
        if after is not None:
            args.append(after.seq)
            query += f" AND seq < ${len(args)}"
        if event_type:
            args.append(event_type)
            query += f" AND type = ${len(args)}"
        args.append(limit + 1)
        query += f" ORDER BY seq DESC LIMIT ${len(args)}"
        found = await self._run(lambda db: db.fetch(query, *args), transaction=False)
        rows, next_position = _page(found, limit)
        return EventPage([_event(row) for row in rows], next_position)

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self, subscription: Subscription, *, limit: int | None = None
    ) -> bool:
        s = subscription

        async def op(db: Conn) -> bool:
            if limit is not None:
                # Count and insert as one step across replicas; the lock is its own statement so
                # that the count sees what the lock's previous holder committed.
                await db.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    SUBSCRIPTIONS_LOCK_CLASS,
                    s.tenant,
                )
                count = await db.fetchval(
                    "SELECT COUNT(*) FROM subscriptions WHERE tenant = $1", s.tenant
                )
                if count >= limit:
                    return False
            await db.execute(
                "INSERT INTO subscriptions (id, tenant, url, event_types, description, enabled,"
                " disabled_reason, secret, previous_secret, previous_expires_at, failing_since,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
                " $12, $13)",
                s.id,
                s.tenant,
                s.url,
                _json(list(s.event_types)),
                s.description,
                s.enabled,
                s.disabled_reason,
                s.secret,
                s.previous_secret,
                s.previous_expires_at,
                s.failing_since,
                s.created_at,
                s.updated_at,
            )
            return True

        return await self._run(op, transaction=limit is not None)

    async def get_subscription(self, tenant: str, subscription_id: str) -> Subscription | None:
        return await self._run(
            lambda db: _get_subscription(db, subscription_id, tenant), transaction=False
        )

    async def list_subscriptions(
        self, tenant: str, *, after: Position | None, limit: int
    ) -> SubscriptionPage:
        found = await self._run(
            lambda db: db.fetch(
                f"SELECT {_SUBSCRIPTION}, seq FROM subscriptions WHERE tenant = $1 AND seq > $2"
                " ORDER BY seq LIMIT $3",
                tenant,
                after.seq if after else 0,
                limit + 1,
            ),
            transaction=False,
        )
        rows, next_position = _page(found, limit)
        return SubscriptionPage([_subscription(row) for row in rows], next_position)

    async def update_subscription(
        self, tenant: str, subscription_id: str, changes: SubscriptionChanges
    ) -> Subscription | None:
        names = [name for name, _ in changes.items()]
        values = [_json(list(v)) if isinstance(v, tuple) else v for _, v in changes.items()]
        sets = [f"{name} = ${n}" for n, name in enumerate(names, start=1)]
        if changes.enabled is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]
        n = len(values)
        sets.append(f"updated_at = ${n + 1}")

        async def op(db: Conn) -> Subscription | None:
            await db.execute(
                f"UPDATE subscriptions SET {', '.join(sets)} WHERE tenant = ${n + 2}"
                f" AND id = ${n + 3}",
                *values,
                _now(),
                tenant,
                subscription_id,
            )
            return await _get_subscription(db, subscription_id, tenant)

        return await self._run(op)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        async def op(db: Conn) -> bool:
            deleted = await db.fetchval(
                "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2 RETURNING 1",
                tenant,
                subscription_id,
            )
            if deleted:
                await _fail_undelivered(db, subscription_id, "subscription deleted")
            return bool(deleted)

        return await self._run(op)

    async def disable_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        async def op(db: Conn) -> Subscription | None:
            changed = await db.fetchval(
                "UPDATE subscriptions SET enabled = FALSE, disabled_reason = $1, updated_at = $2"
                " WHERE id = $3 AND enabled RETURNING 1",
                reason,
                _now(),
                subscription_id,
            )
            if not changed:
                return None
            await _fail_undelivered(db, subscription_id, f"subscription disabled: {reason}")
            return await _get_subscription(db, subscription_id)

        return await self._run(op)

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
        in_flight = busy or {}
        # Each tenant's oldest due deliveries up to its room (one index range each) and the
        # leases that ended (few), then turns: every tenant's first, every tenant's second, ...
        # SKIP LOCKED: replicas claiming at the same moment take different rows, never wait;
        # rows locked here but not taken are free again when the statement ends.
        rows = await self._run(
            lambda db: db.fetch(
                "WITH rooms AS (SELECT t.tenant, LEAST($5, $6 - COALESCE(b.n, 0)) AS room"
                " FROM (SELECT DISTINCT tenant FROM subscriptions) AS t"
                " LEFT JOIN unnest($7::text[], $8::int[]) AS b (tenant, n) USING (tenant)),"
                " pending AS (SELECT r.tenant, c.id, c.next_attempt_at FROM rooms AS r"
                " CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM deliveries"
                " WHERE tenant = r.tenant AND status = 'pending' AND next_attempt_at <= $1"
                " AND subscription_id <> ALL($4::text[])"
                " ORDER BY next_attempt_at LIMIT GREATEST(r.room, 0) FOR UPDATE SKIP LOCKED) AS c),"
                " expired AS (SELECT tenant, id, next_attempt_at FROM deliveries"
                " WHERE status = 'delivering' AND lease_until < $1"
                " AND subscription_id <> ALL($4::text[]) FOR UPDATE SKIP LOCKED),"
                " picked AS (SELECT u.id, u.next_attempt_at, r.room, row_number() OVER"
                " (PARTITION BY u.tenant ORDER BY u.next_attempt_at) AS turn"
                " FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) AS u"
                " JOIN rooms AS r USING (tenant)),"
                " due AS (SELECT id FROM picked WHERE turn <= room"
                " ORDER BY turn, next_attempt_at LIMIT $5)"
                " UPDATE deliveries d SET status = 'delivering', lease_owner = $2,"
                " lease_until = $3, updated_at = $1"
                " FROM due, events e, subscriptions s"
                " WHERE d.id = due.id AND e.id = d.event_id AND s.id = d.subscription_id"
                f" RETURNING {_DELIVERY_JOINED}",
                now,
                owner,
                now + lease,
                list(exclude),
                limit,
                limit if per_tenant is None else per_tenant,
                list(in_flight),
                list(in_flight.values()),
            ),
            transaction=False,
        )
        return [_claimed(row) for row in rows]

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        if outcomes:
            await self._run(lambda db: _complete(db, outcomes, now, self._origin))

    async def list_deliveries(self, tenant: str, event_id: str) -> Sequence[Delivery]:
        return await self._run(lambda db: _list_deliveries(db, tenant, event_id), transaction=False)

    async def redeliver(
        self, tenant: str, event_id: str, subscription_id: str | None
    ) -> Sequence[Delivery]:
        async def op(db: Conn) -> list[Delivery]:
            event_type = await db.fetchval(
                "SELECT type FROM events WHERE tenant = $1 AND id = $2", tenant, event_id
            )
            if event_type is None:
                return []
            targets = [
                s.id
                for s in await _subscriptions(db, tenant, enabled_only=True)
                if (s.id == subscription_id if subscription_id else s.matches(event_type))
            ]
            ids = set(await _queue(db, event_id, tenant, targets, time.time(), self._origin))
            return [d for d in await _list_deliveries(db, tenant, event_id) if d.id in ids]

        return await self._run(op)

    async def queue_depth(self) -> int:
        value = await self._run(
            lambda db: db.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering')"
            ),
            transaction=False,
        )
        return int(value or 0)


# -- run on one connection ------------------------------------------------------------------------


async def _migrate(db: Conn) -> None:
    """Every pending migration, in the caller's one transaction (a crash leaves the schema as it
    was), under a lock that replicas starting together queue on: the first migrates, the others
    then find nothing to do."""
    await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TEXT NOT NULL)"
    )
    current = await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    for version, script in migrations():
        if version <= current:
            continue
        await db.execute(script)
        await db.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, _now())


async def _keep_session(_: object) -> None:
    """Nothing to reset between operations (no session state: locks are the transaction's, no
    LISTEN, no SET), which saves the driver's reset query, a round trip per operation."""


def _set_when_closed(lost: asyncio.Event, _: object) -> None:
    lost.set()


async def _notify(db: Conn, origin: str) -> None:
    """Wake every other listening process once this transaction commits (not before, not if it
    fails)."""
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, origin)


def _notify_if_queued(origin: int) -> str:
    """The end of a `WITH queued AS (INSERT ... RETURNING 1)` statement: a notification if it
    queued anything; `origin` is the parameter number of the notifying store's id."""
    return f"SELECT pg_notify('{CHANNEL}', ${origin}) FROM (SELECT FROM queued LIMIT 1) AS q"


async def _get_resource(db: Conn, kind: str, resource_id: str) -> ResourceRecord | None:
    row = await db.fetchrow(
        f"SELECT {_RESOURCE} FROM resources WHERE kind = $1 AND id = $2", kind, resource_id
    )
    return _resource(row) if row else None


async def _get_idempotent(db: Conn, tenant: str, key: str) -> IdempotentRecord | None:
    row = await db.fetchrow(
        "SELECT tenant, key, operation, fingerprint, state, status, headers, body"
        " FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND expires_at > $3",
        tenant,
        key,
        time.time(),
    )
    if row is None:
        return None
    tenant, key, operation, fingerprint, state, status, headers, body = row
    return IdempotentRecord(
        tenant, key, operation, fingerprint, state, status, orjson.loads(headers or "{}"), body
    )


async def _subscriptions(db: Conn, tenant: str, *, enabled_only: bool) -> list[Subscription]:
    query = f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE tenant = $1"
    if enabled_only:
        query += " AND enabled"
    return [_subscription(row) for row in await db.fetch(query + " ORDER BY seq", tenant)]


async def _get_subscription(
    db: Conn, subscription_id: str, tenant: str | None = None
) -> Subscription | None:
    row = await db.fetchrow(
        f"SELECT {_SUBSCRIPTION} FROM subscriptions WHERE id = $1", subscription_id
    )
    if row is None:
        return None
    found = _subscription(row)
    return found if tenant is None or found.tenant == tenant else None


async def _queue(
    db: Conn,
    event_id: str,
    tenant: str,
    subscription_ids: Sequence[str],
    now: float,
    origin: str,
) -> list[str]:
    ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
    if ids:
        await db.execute(
            "WITH queued AS (INSERT INTO deliveries (id, event_id, subscription_id, tenant,"
            " status, attempts, next_attempt_at, created_at, updated_at)"
            " SELECT d.id, $2, d.subscription_id, $3, 'pending', 0, $4, $4, $4"
            " FROM unnest($1::text[], $5::text[]) AS d (id, subscription_id) RETURNING 1)"
            f" {_notify_if_queued(6)}",
            ids,
            event_id,
            tenant,
            now,
            list(subscription_ids),
            origin,
        )
    return ids


async def _fail_undelivered(db: Conn, subscription_id: str, reason: str) -> None:
    await db.execute(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $1,"
        " lease_owner = NULL, lease_until = NULL, updated_at = $2"
        " WHERE subscription_id = $3 AND status IN ('pending', 'delivering')",
        reason,
        time.time(),
        subscription_id,
    )


async def _complete(db: Conn, outcomes: Sequence[AttemptOutcome], now: float, origin: str) -> None:
    # Rows are locked in id order, so two replicas' batches cannot deadlock on each other.
    made = sorted(
        ((o, o.attempt) for o in outcomes if o.attempt is not None), key=lambda m: m[0].delivery_id
    )
    handed_back = sorted(o.delivery_id for o in outcomes if o.attempt is None)
    if made:
        await db.executemany(
            "INSERT INTO attempts (delivery_id, number, at, status, duration_ms, error,"
            " response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (delivery_id, number) DO UPDATE SET at = EXCLUDED.at,"
            " status = EXCLUDED.status, duration_ms = EXCLUDED.duration_ms,"
            " error = EXCLUDED.error, response_excerpt = EXCLUDED.response_excerpt",
            [(o.delivery_id, *attrs.astuple(a)) for o, a in made],
        )
        # Only a delivery still leased moves on: one failed by a disable stays failed.
        await db.executemany(
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3,"
            " last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5"
            " WHERE id = $6 AND status = 'delivering'",
            [(o.status, a.number, o.next_attempt_at, a.error, now, o.delivery_id) for o, a in made],
        )
    if handed_back:
        await db.execute(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
            " updated_at = $1 WHERE id = ANY($2::text[]) AND status = 'delivering'",
            now,
            handed_back,
        )
        await _notify(db, origin)
    if made:
        # A stable sort: one subscription's outcomes keep their order (the last one counts).
        by_subscription = sorted(made, key=lambda m: m[0].subscription_id)
        await db.executemany(
            "UPDATE subscriptions SET failing_since = CASE WHEN $1 THEN NULL"
            " ELSE COALESCE(failing_since, $2) END WHERE id = $3",
            [(o.subscription_succeeded, now, o.subscription_id) for o, _ in by_subscription],
        )


async def _list_deliveries(db: Conn, tenant: str, event_id: str) -> list[Delivery]:
    deliveries = [
        _delivery(row)
        for row in await db.fetch(
            f"SELECT {_DELIVERY} FROM deliveries WHERE tenant = $1 AND event_id = $2"
            ' ORDER BY created_at, id COLLATE "C"',
            tenant,
            event_id,
        )
    ]
    if not deliveries:
        return []
    attempts: dict[str, list[Attempt]] = {}
    for row in await db.fetch(
        "SELECT delivery_id, number, at, status, duration_ms, error, response_excerpt"
        " FROM attempts WHERE delivery_id = ANY($1::text[]) ORDER BY number",
        [d.id for d in deliveries],
    ):
        attempts.setdefault(row[0], []).append(Attempt(*row[1:]))
    return [attrs.evolve(d, attempt_log=tuple(attempts.get(d.id, ()))) for d in deliveries]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: what SQLite's `json_patch` does to resource attributes."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
