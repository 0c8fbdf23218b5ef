"""The SQLite store: the embedded default, in WAL mode, migrated forward at start-up.

One connection, owned by one thread: every operation runs there in a single hop, to its end
(`_run`: each of its steps is a synchronous SQLite call). Writes are group-committed: operations
queued while a commit is under way are run together in the next transaction, each inside its own
savepoint (one failing does not undo the others), and none returns before its transaction
committed. With `synchronous=FULL` a commit survives a crash of the machine, not only of the
process, before the gateway answers 2xx for what it stored. Reads run on read-only connections,
one per reader thread (WAL lets them read while the writer writes): never on the event loop's
thread, where one long read would stall every request, callback and delivery of the process. The
one exception is a lookup (`_lookup`: a row by its key, e.g. a resource's owner on every proxied
call, or the few children of a parent): one bounded index range, a few microseconds at any size,
costs less on the loop's thread than the hop to a reader and back would; if SQLite cannot answer
at once, it takes the hop. A parent's few children, once read, are remembered until one of them
is written (`gateway.store.remembering`): this process is the database's only writer.

The store keeps its own statistics (`PRAGMA optimize`, bounded by `analysis_limit`, at open, after
each purge and at close) and its WAL file's size (`journal_size_limit`).

The logic is `gateway.store.logic`'s, in SQLite's spelling of what differs
(`gateway.store.sqlite_dialect.SQLiteDb`); here is how it runs: the threads, their connections and
the writes' batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from gateway.store import retention, sql
from gateway.store.operations import Op
from gateway.store.remembering import RemembersChildren
from gateway.store.sql import Row
from gateway.store.sqlite_dialect import SQLiteDb

MIGRATIONS = "gateway.store.migrations.sqlite"
READERS = 2  # reader threads (and connections): SQLite's C code reads without holding the GIL
# The WAL file is truncated to this after a checkpoint (else it keeps its largest size).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
# A reader's page cache (KiB) and how much of the file it maps (SQLite caps it at its build's
# limit, 2 GB on Debian's). A random event's B-tree pages missed the default 2 MB cache and were
# read from the OS page by page (`getEvent` p50 1M/10k x1.51, an event's deliveries x1.97): a
# getEvent and its deliveries read 2.65 pages a statement at 10k events, 6.16 at 500k; with
# these, none at either size (`sqlite3`'s `.stats`, after as many warm-up lookups). The pages
# are the OS's (mapped, shared by the readers), the cache at most 64 MB a reader.
READ_CACHE_KIB = 64 * 1024
READ_MMAP_BYTES = 1 << 40
# Rows ANALYZE samples per index (SQLite's advice for `PRAGMA optimize`): milliseconds at any size.
ANALYSIS_LIMIT = 1000
T = TypeVar("T")


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts, in order."""
    return sql.migrations(MIGRATIONS)


class SQLiteStore(RemembersChildren):  # this process is the database's only writer
    writes_in_order = True  # one writer, queued writes committed in turn (`_write`)
    dialect = SQLiteDb

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._db: SQLiteDb | None = None
        self._readers: asyncio.Queue[SQLiteDb] | None = None
        self._reader_threads: ThreadPoolExecutor | None = None
        self._prober: SQLiteDb | None = None  # the loop thread's, for `_lookup`
        self._thread: ThreadPoolExecutor | None = None
        self._queued: list[tuple[Op[Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None

    @property
    def db(self) -> SQLiteDb:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    # -- plumbing -------------------------------------------------------------------------------

    async def _read(self, op: Op[T]) -> T:
        """Run `op` on a free read-only connection, in a reader thread: the hop costs tens of
        microseconds, and the loop goes on serving while SQLite reads."""
        if self._readers is None or self._reader_threads is None:
            raise RuntimeError("the store is not open")
        reader = await self._readers.get()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._reader_threads, _run, op, reader
            )
        finally:
            self._readers.put_nowait(reader)

    async def _lookup(self, op: Op[T]) -> T:
        if self._prober is None:
            raise RuntimeError("the store is not open")
        try:
            return _run(op, self._prober)
        except sqlite3.OperationalError:  # busy (WAL recovery, a checkpoint): never wait here
            return await self._read(op)

    async def _lookup_rows(self, query: str, args: Sequence[object]) -> Sequence[Row]:
        # As `_lookup` runs it, without an operation's coroutines: a children lookup without
        # a row took 25.5 k instructions, 36.5 k as an operation (callgrind).
        if self._prober is None:
            raise RuntimeError("the store is not open")
        try:
            return self._prober.fetch(query, args)
        except sqlite3.OperationalError:
            return await self._read(lambda db: db.rows(query, args))

    async def _in_thread(self, call: Callable[[SQLiteDb], T]) -> T:
        """Call `call` with the writer's connection, in its thread."""
        if self._thread is None:
            raise RuntimeError("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, self.db)

    async def _write(self, op: Op[T], *, single: bool = False) -> T:
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

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[retention.Runner | None]:
        """Batches through the writer, between the other writes; then the statistics of the
        tables the purge changed are refreshed."""
        yield self._write
        await self._in_thread(_optimize)

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, _create_private, self.path)
        self._db = SQLiteDb(await loop.run_in_executor(self._thread, _connect, self.path))
        await self._in_thread(functools.partial(_run, lambda db: sql.migrate(db, MIGRATIONS)))
        await self._in_thread(SQLiteDb.watch_subscriptions)
        await self._in_thread(_optimize)
        self._readers = asyncio.Queue()
        for _ in range(READERS):
            self._readers.put_nowait(SQLiteDb(_connect(self.path, read_only=True)))
        self._reader_threads = ThreadPoolExecutor(READERS, thread_name_prefix="sqlite-reader")
        self._prober = SQLiteDb(_connect(self.path, read_only=True, busy_timeout=0))

    async def close(self) -> None:
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._reader_threads is not None:
            self._reader_threads.shutdown(wait=True)
        while self._readers is not None and not self._readers.empty():
            self._readers.get_nowait().conn.close()
        if self._prober is not None:
            self._prober.conn.close()
            self._prober = None
        if self._db is not None and self._thread is not None:
            await self._in_thread(_optimize)
            await self._in_thread(lambda db: db.conn.close())
            self._thread.shutdown(wait=True)
        self._db = None
        self._readers = None
        self._reader_threads = None
        self._thread = None

    def listen(self, wake: Callable[[], None]) -> None:
        """Nothing to do: one process uses the file, and it wakes its own workers."""


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


def _connect(
    path: Path, *, read_only: bool = False, busy_timeout: int = 5000
) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout={busy_timeout}")
    if read_only:
        db.execute("PRAGMA query_only=1")
        db.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
        db.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")
    else:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        db.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
    return db


def _optimize(db: SQLiteDb) -> None:
    """Refresh the statistics that are missing or stale (SQLite decides, `analysis_limit` bounds
    the work), so the planner keeps choosing the index ranges the reads are written for. Best
    effort: when another connection to the file holds the lock (a second app in one process, a
    `gateway` command beside the server), the statistics wait for the next round."""
    with contextlib.suppress(sqlite3.OperationalError):
        db.conn.execute("PRAGMA optimize")


def _run(op: Op[T], db: SQLiteDb) -> T:
    """Run `op` to its end, here and now: it awaits only `db`, whose steps never suspend."""
    coroutine = op(db)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("a SQLite store operation waited on something other than SQLite")


def _run_batch(db: SQLiteDb, ops: Sequence[Op[Any]]) -> list[tuple[bool, Any]]:
    """One transaction, one savepoint per operation; results (ok, value or exception)."""
    conn = db.conn
    outcomes: list[tuple[bool, Any]] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        db.began()
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                value = _run(op, db)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                db.forget()  # what it undid may be what the store had learnt
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((True, value))
        conn.execute("COMMIT")
    except Exception as exc:  # the transaction itself failed: nothing of it is durable
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        db.forget()
        return [(False, exc)] * len(ops)
    return outcomes
