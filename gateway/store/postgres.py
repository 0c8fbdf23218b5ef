"""The PostgreSQL store: several gateway processes or replicas on one database.

The same schema (numbered migrations, applied under an advisory lock so that replicas starting
together migrate once) and the same behaviour as the SQLite store, which is the reference. A pool of
connections and one transaction per operation; what must hold across replicas is made atomic in the
database: deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leases, a callback's
de-duplication check and insert run under a transaction-scoped advisory lock on (tenant, dedupe
key), idempotency keys are claimed with `INSERT ... ON CONFLICT DO NOTHING`. Transactions that
queue deliveries `NOTIFY` a channel that every process `LISTEN`s on, so idle workers wake
at once rather than polling fast.

The logic is `gateway.store.logic`'s; here is PostgreSQL's spelling of what differs
(`PostgresDb`) and what holds across processes: the pool, the advisory locks, LISTEN/NOTIFY.

A lost connection or a server that is down raises `StoreUnavailable` (answered 503); the pool
reconnects by itself when the server is back. PostgreSQL 13 or later (`gen_random_uuid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import orjson

from gateway.logs import get_logger
from gateway.store import StoreUnavailable, postgres_purge, retention, rows, sql
from gateway.store.logic import Op, SQLStore
from gateway.store.ordering import HEAD
from gateway.store.sql import Claim, Db, Row
from gateway.values import Event

MIGRATIONS = "gateway.store.migrations.postgres"
CHANNEL = "gateway_deliveries"
MIGRATION_LOCK = 0x6761_7465_7761_79  # "gateway": one bigint key, apart from the two-int keys
CONNECT_TIMEOUT = 5.0
ACQUIRE_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
RETRIES = 3  # a transaction that lost a deadlock or serialization race is run again
LISTEN_KEEPALIVE = 5.0  # the listening connection is checked this often
LISTEN_BACKOFF = (0.1, 2.0)  # first and longest wait before reconnecting it

# The settings of the listings' connections (`PostgresStore._range`), made once per connection.
LISTING_SETTINGS = {"enable_sort": "off", "jit": "off"}
# The same for one transaction (`python -m bench.store_depth`'s EXPLAIN).
IN_INDEX_ORDER = "; ".join(
    f"SET LOCAL {name} = {value}" for name, value in LISTING_SETTINGS.items()
)

T = TypeVar("T")
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = PoolConnectionProxy[asyncpg.Record]
PgOp: TypeAlias = "Callable[[PostgresDb], Coroutine[Any, Any, T]]"

log = get_logger("gateway.store")

# The server is down, restarting, or the connection to it was lost.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def listing_pool_size(pool_size: int) -> int:
    """The connections kept for listings, beside the `pool_size` of everything else."""
    return max(2, pool_size // 2)


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts, in order (the same numbers as SQLite's)."""
    return sql.migrations(MIGRATIONS)


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


class PostgresStore(SQLStore):
    def __init__(self, dsn: str, *, password: str | None = None, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._password = password
        self._pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._listings: asyncpg.Pool[asyncpg.Record] | None = None  # `_range`'s
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

    async def _read(self, op: Op[T]) -> T:
        return await self._run(op, transaction=False)

    async def _write(self, op: Op[T], *, single: bool = False) -> T:
        return await self._run(op, transaction=not single)

    async def _range(self, op: Op[T]) -> T:
        # A listing reads its index range in the index's order and stops at the page, whatever
        # the statistics. Without them (a bulk load autovacuum has not analyzed yet) PostgreSQL
        # takes a tenant's events of a type, a subscription's failed deliveries or an hour's
        # events for a handful (0.5 % per condition), reads them all by bitmap and sorts them:
        # 300 ms for 25k events of one type at 100k. Neither an ORDER BY of the index's every
        # column (the equal ones drop out of it) nor row-value bounds (estimated as a third of the
        # table, then read through other indexes and sorted) fixed it; so sorting is off for
        # listings. And JIT compilation with it: a sort that could not be avoided would be costed
        # past jit_above_cost and compiled, 300 ms. Both are set once per connection, on a pool
        # of the listings' own: set in each listing's transaction, its BEGIN, SET and COMMIT cost
        # three round trips more than the query (a subscription's failed deliveries at 1M: p95
        # 5.4 ms, over the 5 ms goal). Outside a transaction each statement reads its own
        # snapshot, as it did inside one (READ COMMITTED).
        if self._listings is None:
            raise RuntimeError("the store is not open")
        return await self._run(op, transaction=False, pool=self._listings)

    async def _run(
        self,
        op: PgOp[T],
        *,
        transaction: bool = True,
        pool: asyncpg.Pool[asyncpg.Record] | None = None,
    ) -> T:
        """Run `op` on a connection of `pool` (the store's), in a transaction unless it is one
        statement (atomic by itself: two round trips fewer); its result once committed.
        Connection trouble becomes `StoreUnavailable`."""
        pool = pool or self.pool
        for attempt in range(RETRIES):
            try:
                conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT)
            except _UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
            try:
                db = PostgresDb(conn, self._origin)
                if not transaction:
                    return await op(db)
                async with conn.transaction():
                    return await op(db)
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
                    await pool.release(conn)
        raise AssertionError("unreachable")

    def _exclusive(self) -> contextlib.AbstractAsyncContextManager[retention.Runner | None]:
        return postgres_purge.exclusive(self.pool, self._write)

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(self._dsn, password=self._password, timeout=CONNECT_TIMEOUT)

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await self._create_pool(self._pool_size)
            self._listings = await self._create_pool(
                listing_pool_size(self._pool_size), settings=LISTING_SETTINGS
            )
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        await self._run(_migrate)

    async def _create_pool(
        self, size: int, *, settings: dict[str, str] | None = None
    ) -> asyncpg.Pool[asyncpg.Record]:
        return await asyncpg.create_pool(
            self._dsn,
            password=self._password,
            min_size=0,  # connections are made when needed: none to restore while it is down
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            reset=_keep_session,
            server_settings=settings,
        )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        for pool in (self._pool, self._listings):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), 10)
                except (TimeoutError, *_UNAVAILABLE):
                    pool.terminate()
        self._pool = self._listings = None

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


# -- run on one connection ------------------------------------------------------------------------


async def _migrate(db: PostgresDb) -> None:
    """Every pending migration, in the caller's one transaction (a crash leaves the schema as it
    was), under a lock that replicas starting together queue on: the first migrates, the others
    then find nothing to do."""
    await db.conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await sql.migrate(db, MIGRATIONS)


async def _keep_session(_: object) -> None:
    """Nothing to reset between operations (no session state: locks are the transaction's, no
    LISTEN, no SET), which saves the driver's reset query, a round trip per operation."""


def _attempts(listed: str | None) -> list[tuple[object, ...]]:
    """Rows of `sql.ATTEMPT` from their JSON array (`PostgresDb.listed_deliveries`); a duration
    that JSON wrote without a fraction is a float again."""
    return [
        (delivery_id, number, at, status, float(duration), error, excerpt)
        for delivery_id, number, at, status, duration, error, excerpt in orjson.loads(
            listed or "[]"
        )
    ]


def _set_when_closed(lost: asyncio.Event, _: object) -> None:
    lost.set()


def _notify_if_queued(origin: int) -> str:
    """The end of a `WITH queued AS (INSERT ... RETURNING 1)` statement: a notification if it
    queued anything; `origin` is the parameter number of the notifying store's id."""
    return f"SELECT pg_notify('{CHANNEL}', ${origin}) FROM (SELECT FROM queued LIMIT 1) AS q"


@functools.cache
def _replace(table: str, columns: str, key: str) -> str:
    names, keys = columns.split(", "), key.split(", ")
    update = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in keys)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(names))})"
        f" ON CONFLICT ({key}) DO UPDATE SET {update}"
    )


class PostgresDb(Db):
    """PostgreSQL's spelling: placeholders numbered, lists as arrays, text ordered by bytes."""

    binary = ' COLLATE "C"'
    for_update = " FOR UPDATE"

    def __init__(self, conn: Conn, origin: str) -> None:
        self.conn = conn
        self._origin = origin  # the notifying store's id

    async def rows(self, query: str, args: Sequence[object] = ()) -> Sequence[Row]:
        return await self.conn.fetch(sql.numbered(query), *args)

    async def row(self, query: str, args: Sequence[object] = ()) -> Row | None:
        return await self.conn.fetchrow(sql.numbered(query), *args)

    async def value(self, query: str, args: Sequence[object] = ()) -> Any:
        return await self.conn.fetchval(sql.numbered(query), *args)

    async def count(self, query: str, args: Sequence[object] = ()) -> int:
        status = await self.conn.execute(sql.numbered(query), *args)
        changed = status.rpartition(" ")[2]  # "UPDATE 2", "INSERT 0 1"; "CREATE TABLE"
        return int(changed) if changed.isdigit() else 0

    async def many(self, query: str, args: Iterable[Sequence[object]]) -> None:
        await self.conn.executemany(sql.numbered(query), args)

    @staticmethod
    def any_of_text(column: str, count: int) -> str:
        return f"{column} = ANY(?::text[])"

    @staticmethod
    def any_of_args(values: Sequence[str]) -> Sequence[object]:
        return [list(values)]

    async def attempts_of(self, delivery_ids: Sequence[str]) -> Sequence[Row]:
        # Without statistics `delivery_id = ANY(a page of ids)` is estimated at a quarter of the
        # table, and scanned; a lateral subquery per id (ordered: it stays one) is a lookup each.
        return await self.rows(
            "SELECT a.* FROM unnest(?::text[]) AS k (id) CROSS JOIN LATERAL"
            f" (SELECT {sql.ATTEMPT} FROM attempts WHERE delivery_id = k.id ORDER BY number)"
            " AS a",
            [list(delivery_ids)],
        )

    async def listed_deliveries(
        self, query: str, args: Sequence[object]
    ) -> Sequence[tuple[Row, Sequence[Row]]]:
        # One statement, one round trip: each delivery's attempts in order (an index range of
        # the primary key each, as `attempts_of` reads them) as a JSON array on its row. A
        # projection of the subquery keeps its rows in the subquery's order.
        found = await self.rows(
            f"SELECT p.*, (SELECT json_agg(json_build_array({sql.ATTEMPT}))"
            f" FROM (SELECT {sql.ATTEMPT} FROM attempts WHERE delivery_id = p.id ORDER BY number)"
            f" AS a) FROM ({query}) AS p",
            args,
        )
        return [(row[:-1], _attempts(row[-1])) for row in found]

    def json_text(self, column: str, key: str) -> str:
        return f"({column} ->> '{key}')"

    async def apply_migration(self, version: int, script: str) -> None:
        await self.conn.execute(script)
        await self.conn.execute(
            "INSERT INTO schema_migrations VALUES ($1, $2)", version, sql.timestamp()
        )

    async def lock(self, lock_class: int, key: str) -> None:
        # Its own statement, so that the statements after it see what the previous holder
        # committed.
        await self.conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", lock_class, key)

    async def notify(self) -> None:
        await self.conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._origin)

    def replace(self, table: str, columns: str, key: str) -> str:
        return _replace(table, columns, key)

    async def insert_event(self, event: Event, now: float, since: float) -> int | None:
        # The check and the insert in one statement ($3 is the tenant, $7 the dedupe key).
        stored = await self.conn.fetchval(
            f"INSERT INTO events ({rows.EVENT}, received_at, received_epoch)"
            " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $7::text IS NULL OR NOT EXISTS"
            " (SELECT 1 FROM events WHERE tenant = $3 AND dedupe_key = $7"
            " AND received_epoch > $10) RETURNING seq",
            *rows.event_values(event),
            sql.timestamp(),
            now,
            since,
        )
        return None if stored is None else int(stored)

    async def insert_subscription(self, args: Sequence[object]) -> None:
        # seq is an identity column: PostgreSQL numbers it.
        await self.conn.execute(
            f"INSERT INTO subscriptions ({rows.SUBSCRIPTION}) VALUES ($1, $2, $3, $4, $5, $6,"
            " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            *args,
        )

    async def queue(
        self, event_id: str, tenant: str, subscription_ids: Sequence[str], now: float
    ) -> list[str]:
        ids = [f"dlv_{uuid.uuid4().hex}" for _ in subscription_ids]
        if ids:
            await self.conn.execute(
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
                self._origin,
            )
        return ids

    async def queue_matching(
        self, event: Event, now: float, order: tuple[str, int] | None = None
    ) -> bool:
        # Subscription.matches, in SQL: one statement queues all those without a filter, and
        # says whether there are others, as of the same snapshot (no round trip more for them).
        key, seq = order or (None, None)
        filtered = await self.conn.fetchval(
            "WITH queued AS (INSERT INTO deliveries (id, event_id, subscription_id,"
            " tenant, status, attempts, next_attempt_at, created_at, updated_at, order_key,"
            " order_seq)"
            " SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), $1, id,"
            " tenant, 'pending', 0, $4, $4, $4, CASE WHEN order_by IS NOT NULL THEN $6::text END,"
            " CASE WHEN order_by IS NOT NULL THEN $7::bigint END FROM subscriptions"
            " WHERE tenant = $2 AND enabled AND filter IS NULL"
            " AND (event_types ? '*' OR event_types ? $3)"
            f" RETURNING 1), woken AS ({_notify_if_queued(5)})"
            # Counting `woken` runs it (a WITH query nobody reads is not run).
            " SELECT EXISTS (SELECT 1 FROM subscriptions WHERE tenant = $2 AND enabled"
            " AND filter IS NOT NULL) FROM (SELECT count(*) FROM woken) AS w",
            event.id,
            event.tenant,
            event.type,
            now,
            self._origin,
            key,
            seq,
        )
        return bool(filtered)

    async def claim(self, claim: Claim) -> Sequence[Row]:
        # Each tenant's oldest due deliveries up to its room (one index range each) and the
        # leases that ended (few), then turns: every tenant's first, every tenant's second, ...
        # SKIP LOCKED: replicas claiming at the same moment take different rows, never wait;
        # rows locked here but not taken are free again when the statement ends. Subscriptions
        # held back (throttled: `gateway.store.throttle`) are skipped.
        return await self.conn.fetch(
            "WITH held AS (SELECT id FROM subscriptions WHERE held_until > $1),"
            " rooms AS (SELECT t.tenant, LEAST($5, $6 - COALESCE(b.n, 0)) AS room"
            " FROM (SELECT DISTINCT tenant FROM subscriptions) AS t"
            " LEFT JOIN unnest($7::text[], $8::int[]) AS b (tenant, n) USING (tenant)),"
            " pending AS (SELECT r.tenant, c.id, c.next_attempt_at FROM rooms AS r"
            " CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM deliveries"
            " WHERE tenant = r.tenant AND status = 'pending' AND next_attempt_at <= $1"
            " AND subscription_id <> ALL($4::text[])"
            f" AND subscription_id NOT IN (SELECT id FROM held) AND {HEAD}"
            " ORDER BY next_attempt_at LIMIT GREATEST(r.room, 0) FOR UPDATE SKIP LOCKED) AS c),"
            " expired AS (SELECT tenant, id, next_attempt_at FROM deliveries"
            " WHERE status = 'delivering' AND lease_until < $1"
            " AND subscription_id <> ALL($4::text[])"
            f" AND subscription_id NOT IN (SELECT id FROM held) AND {HEAD}"
            " FOR UPDATE SKIP LOCKED),"
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
            f" RETURNING {rows.DELIVERY_JOINED}",
            claim.now,
            claim.owner,
            claim.now + claim.lease,
            list(claim.exclude),
            claim.limit,
            claim.most,
            list(claim.busy),
            list(claim.busy.values()),
        )


PostgresStore.dialect = PostgresDb  # the dialect is defined after the store
