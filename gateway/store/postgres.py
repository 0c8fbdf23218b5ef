"""The PostgreSQL store: several gateway processes or replicas on one database.

The same schema (numbered migrations, applied under an advisory lock so that replicas starting
together migrate once) and the same behaviour as the SQLite store, which is the reference. A pool of
connections and one transaction per operation; what must hold across replicas is made atomic in the
database: deliveries are claimed with `FOR UPDATE SKIP LOCKED` and leases, a callback's
de-duplication check and insert run under a transaction-scoped advisory lock on (tenant, dedupe
key), idempotency keys are claimed with `INSERT ... ON CONFLICT DO NOTHING`. Transactions that
queue deliveries `NOTIFY` a channel that every process `LISTEN`s on, so idle workers wake
at once rather than polling fast.

The logic is `gateway.store.logic`'s, in PostgreSQL's spelling of what differs
(`gateway.store.postgres_dialect.PostgresDb`: the advisory locks, NOTIFY); here is how it runs
across processes: the pools, the transactions and their retries, LISTEN.

A lost connection or a server that is down raises `StoreUnavailable` (answered 503); the pool
reconnects by itself when the server is back. PostgreSQL 13 or later (`gen_random_uuid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg

from gateway.logs import get_logger
from gateway.store import postgres_purge, retention, sql
from gateway.store.errors import StoreUnavailable
from gateway.store.logic import SQLStore
from gateway.store.operations import Op
from gateway.store.postgres_dialect import CHANNEL, PostgresDb

MIGRATIONS = "gateway.store.migrations.postgres"
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
    from gateway.store.postgres_dialect import Conn
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
    dialect = PostgresDb

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


def _set_when_closed(lost: asyncio.Event, _: object) -> None:
    lost.set()
