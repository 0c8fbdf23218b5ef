"""Retention: what the store forgets, written once for both stores, and the purger that runs it.

A purge round deletes, in small batches of one transaction each (so that ingest and delivery never
wait behind it for long): idempotency records past their TTL; bulk recoveries a week after they
finished; the deliveries and attempts of deleted subscriptions; events older than the retention
window, each with its deliveries and attempts. An event with a delivery still pending or delivering
is kept until that delivery ends (its retries run their schedule, then the event goes at the next
round): a purge never takes an event from under a worker. With a shorter window for payloads, the
events past it that are not being delivered lose their payload (`data` becomes JSON null), in
arrival order from where the last round stopped (`retention_marks`): each round walks only the
events that came of age since, and those kept back by a delivery then. Across PostgreSQL replicas
one round runs at a time (an advisory lock: `SQLStore._exclusive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from gateway.logs import get_logger
from gateway.store.operations import Operations
from gateway.store.protocol import Store
from gateway.store.records import Purged
from gateway.store.sql import Db

T = TypeVar("T")
Counts = dict[str, int]

# A deleted subscription's deliveries stay this long after the delete (seconds): an attempt in
# flight then (`events.attempt_timeout`, within its lease) has written its outcome by far.
DELETED_GRACE = 3600.0
TOMBSTONES_PER_ROUND = 100
# A finished bulk recovery stays readable (getRecovery) this long after it ended (seconds): a
# week, for whoever started it on a Friday; then it goes, or every recovery ever run would stay.
RECOVERIES_KEPT = 7 * 86400.0
# A condition on an events row: its payload was purged (stored as JSON null; never an object).
PAYLOAD_GONE = "CAST(data AS TEXT) = 'null'"
PAYLOADS_MARK = "payloads"  # its row in retention_marks: the seq the payload purge got to

log = get_logger("gateway.store")


class Runner(Protocol):
    def __call__(self, op: Callable[[Db], Coroutine[Any, Any, T]]) -> Awaitable[T]:
        """Run `op` in a transaction of its own; its result once committed."""


class Purging(Operations):
    """`Store.purge`, as `logic.SQLStore` (a subclass) has it: a round over the store's writer."""

    def _exclusive(self) -> contextlib.AbstractAsyncContextManager[Runner | None]:
        """A purge round's runner (each op its own transaction), or None when another process
        holds the purge. One process per store by default: its rounds never overlap."""
        return _held(self._write)

    async def purge(
        self,
        *,
        now: float,
        keep_events: float | None,
        batch: int,
        keep_payloads: float | None = None,
    ) -> Purged | None:
        async with self._exclusive() as run:
            if run is None:
                return None
            return await purge(
                run, now=now, keep_events=keep_events, batch=batch, keep_payloads=keep_payloads
            )


@contextlib.asynccontextmanager
async def _held(run: Runner) -> AsyncIterator[Runner | None]:
    yield run


async def purge(
    run: Runner,
    *,
    now: float,
    keep_events: float | None,
    batch: int,
    keep_payloads: float | None = None,
) -> Purged:
    """One round, batch by batch (`run` commits each); `keep_events` None keeps every event,
    `keep_payloads` None keeps payloads as long as their events."""
    counts: Counts = {}
    for table, expired in (
        ("idempotency_keys", functools.partial(_idempotency_batch, now=now, batch=batch)),
        ("recoveries", functools.partial(_recoveries_batch, now=now, batch=batch)),
    ):
        while True:
            removed = await run(expired)
            _add(counts, {table: removed})
            if removed < batch:
                break
    tombstones = await run(
        lambda db: db.rows(
            "SELECT id FROM deleted_subscriptions WHERE deleted_at <= ? ORDER BY deleted_at"
            " LIMIT ?",
            (now - DELETED_GRACE, TOMBSTONES_PER_ROUND),
        )
    )
    for (subscription_id,) in tombstones:
        more = True
        while more:
            removed_counts, more = await run(
                functools.partial(_subscription_batch, subscription_id=subscription_id, batch=batch)
            )
            _add(counts, removed_counts)
    after: int | None = 0
    while keep_events is not None and after is not None:
        step = functools.partial(_events_batch, after=after, cutoff=now - keep_events, batch=batch)
        removed_counts, after = await run(step)
        _add(counts, removed_counts)
    if keep_payloads is not None and (keep_events is None or keep_payloads < keep_events):
        counts["payloads"] = await _purge_payloads(run, cutoff=now - keep_payloads, batch=batch)
    oldest = await run(
        lambda db: db.value("SELECT received_epoch FROM events ORDER BY seq LIMIT 1")
    )
    return Purged(
        events=counts.get("events", 0),
        deliveries=counts.get("deliveries", 0),
        attempts=counts.get("attempts", 0),
        idempotency_keys=counts.get("idempotency_keys", 0),
        oldest_event=None if oldest is None else float(oldest),
        payloads=counts.get("payloads", 0),
        recoveries=counts.get("recoveries", 0),
    )


def _add(counts: Counts, more: Counts) -> None:
    for table, n in more.items():
        counts[table] = counts.get(table, 0) + n


async def _idempotency_batch(db: Db, *, now: float, batch: int) -> int:
    return await db.count(
        "DELETE FROM idempotency_keys WHERE (tenant, key) IN (SELECT tenant, key"
        " FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
        (now, batch),
    )


async def _recoveries_batch(db: Db, *, now: float, batch: int) -> int:
    # Created before it finished: the cutoff bounds the (status, created_at) index's ranges.
    cutoff = now - RECOVERIES_KEPT
    return await db.count(
        "DELETE FROM recoveries WHERE id IN (SELECT id FROM recoveries"
        " WHERE status IN ('done', 'failed') AND created_at <= ? AND finished_at <= ? LIMIT ?)",
        (cutoff, cutoff, batch),
    )


async def _deliveries(db: Db, delivery_ids: Sequence[str]) -> Counts:
    among, args = db.any_of("delivery_id", delivery_ids)
    attempts = await db.count(f"DELETE FROM attempts WHERE {among}", args)
    among, args = db.any_of("id", delivery_ids)
    return {
        "attempts": attempts,
        "deliveries": await db.count(f"DELETE FROM deliveries WHERE {among}", args),
    }


async def _subscription_batch(db: Db, *, subscription_id: str, batch: int) -> tuple[Counts, bool]:
    """Up to `batch` of a deleted subscription's deliveries with their attempts; whether there
    may be more (else its tombstone goes)."""
    found = await db.rows(
        "SELECT id FROM deliveries WHERE subscription_id = ? LIMIT ?", (subscription_id, batch)
    )
    if not found:
        await db.count("DELETE FROM deleted_subscriptions WHERE id = ?", (subscription_id,))
        return {}, False
    return await _deliveries(db, [row[0] for row in found]), True


async def _being_delivered(db: Db, event_ids: Sequence[str]) -> set[str]:
    """Those of the events with a delivery pending or delivering."""
    among, args = db.any_of("event_id", event_ids)
    found = await db.rows(
        f"SELECT event_id FROM deliveries WHERE {among} AND status IN ('pending', 'delivering')",
        args,
    )
    return {row[0] for row in found}


async def _events_batch(
    db: Db, *, after: int, cutoff: float, batch: int
) -> tuple[Counts, int | None]:
    """The events among the next `batch` after `after` (in store order, which is arrival order)
    received before `cutoff` and with no delivery under way, with their deliveries and attempts;
    where the next batch starts (None: the rest is within the window)."""
    found = await db.rows(
        "SELECT seq, id, received_epoch FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, batch),
    )
    old = list(itertools.takewhile(lambda row: row[2] < cutoff, found))
    if not old:
        return {}, None
    busy = await _being_delivered(db, [row[1] for row in old])
    doomed = [row[1] for row in old if row[1] not in busy]
    counts: Counts = {}
    if doomed:
        # The events first: a redelivery that locked one (`redeliver`) commits before this
        # delete goes on, and its deliveries go below with the others; none is left without
        # its event.
        among, args = db.any_of("id", doomed)
        counts["events"] = await db.count(f"DELETE FROM events WHERE {among}", args)
        among, args = db.any_of("subject", [f"event:{event_id}" for event_id in doomed])
        await db.count(f"DELETE FROM trace_contexts WHERE {among}", args)  # tracing's, if any
        among, args = db.any_of("event_id", doomed)
        delivery_ids = [
            r[0] for r in await db.rows(f"SELECT id FROM deliveries WHERE {among}", args)
        ]
        if delivery_ids:
            _add(counts, await _deliveries(db, delivery_ids))
    more = len(old) == len(found) == batch
    return counts, int(old[-1][0]) if more else None


async def _purge_payloads(run: Runner, *, cutoff: float, batch: int) -> int:
    """Blank the payloads of events received before `cutoff`, from the mark on; how many. The
    mark then stays before the first event a delivery kept back, or moves past the last one
    blanked."""
    mark = await run(
        lambda db: db.value("SELECT seq FROM retention_marks WHERE name = ?", (PAYLOADS_MARK,))
    )
    after: int | None = int(mark or 0)
    reached, kept_back, blanked = after, None, 0
    while after is not None:
        step = functools.partial(_payloads_batch, after=after, cutoff=cutoff, batch=batch)
        walked = await run(step)
        blanked += walked.blanked
        reached = max(reached or 0, walked.reached or 0)
        kept_back = kept_back if kept_back is not None else walked.kept_back
        after = walked.reached if walked.more else None
    new_mark = reached if kept_back is None else kept_back - 1
    if new_mark != int(mark or 0):
        await run(
            lambda db: db.count(
                db.replace("retention_marks", "name, seq", "name"), (PAYLOADS_MARK, new_mark)
            )
        )
    return blanked


@attrs.frozen
class Walked:
    """One batch of the payload purge: payloads blanked, the last event it walked past (None:
    none was old enough), whether more may follow, and the first event a delivery kept back."""

    blanked: int
    reached: int | None
    more: bool
    kept_back: int | None


async def _payloads_batch(db: Db, *, after: int, cutoff: float, batch: int) -> Walked:
    found = await db.rows(
        f"SELECT seq, id, received_epoch, {PAYLOAD_GONE} FROM events WHERE seq > ?"
        " ORDER BY seq LIMIT ?",
        (after, batch),
    )
    old = list(itertools.takewhile(lambda row: row[2] < cutoff, found))
    if not old:
        return Walked(0, None, False, None)
    more = len(old) == len(found) == batch
    due = {row[1]: int(row[0]) for row in old if not row[3]}
    if not due:
        return Walked(0, int(old[-1][0]), more, None)
    # Locked first: a redelivery holding one of them (`redeliver`) commits before the check
    # below, which then sees its deliveries under way; one starting after sees the payload gone.
    among, args = db.any_of("id", list(due))
    await db.rows(f"SELECT id FROM events WHERE {among}{db.for_update}", args)
    busy = await _being_delivered(db, list(due))
    doomed = [event_id for event_id in due if event_id not in busy]
    blanked = 0
    if doomed:
        among, args = db.any_of("id", doomed)
        blanked = await db.count(f"UPDATE events SET data = 'null' WHERE {among}", args)
    kept_back = min((due[event_id] for event_id in busy), default=None)
    return Walked(blanked, int(old[-1][0]), more, kept_back)


@attrs.frozen
class RetentionPolicy:
    """What the purger keeps (`keep_events` seconds; None: forever), how many rows a batch
    deletes, and how often a round runs (seconds); `keep_payloads` (seconds; None: as long as
    their events) how long events keep their payload."""

    keep_events: float | None
    batch: int
    interval: float
    keep_payloads: float | None = None


class PurgeMetrics(Protocol):
    def purged(self, table: str, rows: int) -> None: ...

    def oldest_event_age(self, seconds: float) -> None: ...


class Purger:
    """The background task: a purge round every `interval`, its counts to the metrics."""

    def __init__(self, store: Store, policy: RetentionPolicy, metrics: PurgeMetrics) -> None:
        self._store = store
        self._policy = policy
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="store-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self, now: float | None = None) -> Purged | None:
        """One round now; None when another replica's round is under way."""
        now = time.time() if now is None else now
        policy = self._policy
        purged = await self._store.purge(
            now=now,
            keep_events=policy.keep_events,
            batch=policy.batch,
            keep_payloads=policy.keep_payloads,
        )
        if purged is None:
            return None
        for table, rows in purged.by_table().items():
            self._metrics.purged(table, rows)
        self._metrics.oldest_event_age(
            0.0 if purged.oldest_event is None else now - purged.oldest_event
        )
        if any(purged.by_table().values()):
            log.info("store.purged", **purged.by_table())
        return purged

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the store is down, say: the next round tries again
                log.warning("store.purge_failed", error=type(exc).__name__)
            await asyncio.sleep(self._policy.interval)
