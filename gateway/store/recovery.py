"""After a subscriber's outage: its deliveries listed by status and time, and bulk recoveries that
queue every failed one of a time range again. Written once for both stores, as `logic.SQLStore`
(a subclass) runs them.

A recovery is a durable row: any process's `gateway.webhooks.recovery.Recoverer` leases it (one
process at a time, across replicas: the lease is taken and checked in the row, under its row
lock), then queues its deliveries batch by batch, each batch one transaction that also moves the
recovery's position on. A process that stops gives its lease back; one that dies leaves it to run
out, and whoever leases the recovery next continues after the last batch committed. A failed
delivery is queued again once: the new delivery's id is written on it (`requeued_as`) in the same
transaction, and deliveries so marked are passed over.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from gateway.store import rows, steps
from gateway.store.operations import Operations
from gateway.store.records import DeliveryPage, DeliveryPosition, Recovery
from gateway.store.retention import PAYLOAD_GONE
from gateway.store.sql import RECOVERY_LOCK, Db


class Recovering(Operations):
    """The listing and recovery operations of `Store`."""

    async def list_subscription_deliveries(
        self,
        tenant: str,
        subscription_id: str,
        *,
        status: str | None,
        since: float | None,
        until: float | None,
        after: DeliveryPosition | None,
        limit: int,
    ) -> DeliveryPage:
        async def op(db: Db) -> DeliveryPage:
            # Newest first, one index range: (subscription_id[, status], created_at, id). The
            # subscription is the range's key only if it is the tenant's: else the key is NULL
            # and no range is read (as a condition beside the key, SQLite checked it on every row
            # of another tenant's subscription: its whole history read for an empty page). One
            # statement with the page's attempts on PostgreSQL (`Db.listed_deliveries`).
            query = (
                f"SELECT {rows.DELIVERY_LISTED} FROM deliveries WHERE subscription_id ="
                " (SELECT id FROM subscriptions WHERE id = ? AND tenant = ?)"
            )
            args: list[object] = [subscription_id, tenant]
            if status is not None:
                query += " AND status = ?"
                args.append(status)
            if since is not None:
                query += " AND created_at >= ?"
                args.append(since)
            if until is not None:
                query += " AND created_at < ?"
                args.append(until)
            if after is not None:
                query += " AND (created_at, id) < (?, ?)"
                args += [after.created_at, after.id]
            query += " ORDER BY created_at DESC, id DESC LIMIT ?"
            args.append(limit + 1)
            found = await steps.listed(db, query, args)
            items = found[:limit]
            if len(found) <= limit:
                return DeliveryPage(items, None)
            return DeliveryPage(items, DeliveryPosition(items[-1].created_at, items[-1].id))

        return await self._range(op)

    async def start_recovery(
        self, tenant: str, subscription_id: str, *, since: float, until: float, now: float
    ) -> tuple[Recovery, bool] | None:
        async def op(db: Db) -> tuple[Recovery, bool] | None:
            if await steps.get_subscription(db, subscription_id, tenant) is None:
                return None
            # The check and the insert as one step across processes (the lock first).
            await db.lock(RECOVERY_LOCK, subscription_id)
            running = await db.row(
                f"SELECT {rows.RECOVERY} FROM recoveries WHERE subscription_id = ?"
                " AND status = 'running' ORDER BY created_at LIMIT 1",
                (subscription_id,),
            )
            if running is not None:
                return rows.recovery(running), False
            recovery = Recovery(
                id=f"rec_{uuid.uuid4().hex}",
                tenant=tenant,
                subscription_id=subscription_id,
                status="running",
                since=since,
                until=until,
                requeued=0,
                total=None,
                created_at=now,
                finished_at=None,
                reason=None,
            )
            marks = ", ".join("?" * len(attrs.fields(Recovery)))
            await db.count(
                f"INSERT INTO recoveries ({rows.RECOVERY}) VALUES ({marks})",
                attrs.astuple(recovery),
            )
            return recovery, True

        return await self._write(op)

    async def get_recovery(
        self, tenant: str, subscription_id: str, recovery_id: str
    ) -> Recovery | None:
        row = await self._read(
            lambda db: db.row(
                f"SELECT {rows.RECOVERY} FROM recoveries WHERE id = ? AND tenant = ?"
                " AND subscription_id = ?",
                (recovery_id, tenant, subscription_id),
            )
        )
        return None if row is None else rows.recovery(row)

    async def claim_recovery(self, *, owner: str, now: float, lease: float) -> Recovery | None:
        # Looked for with a read first: the poll of every process finds none nearly always, and
        # then takes no write lock (SQLite's writer, a PostgreSQL transaction).
        free = await self._read(
            lambda db: db.value(
                "SELECT id FROM recoveries WHERE status = 'running'"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY created_at LIMIT 1",
                (now,),
            )
        )
        if free is None:
            return None

        async def op(db: Db) -> Recovery | None:
            # Another process leasing it meanwhile: its update comes first, this one then finds
            # the lease live and changes nothing.
            taken = await db.count(
                "UPDATE recoveries SET lease_owner = ?, lease_until = ? WHERE id = ?"
                " AND status = 'running' AND (lease_until IS NULL OR lease_until < ?)",
                (owner, now + lease, free, now),
            )
            return await _get(db, free) if taken else None

        return await self._write(op)

    async def recover_step(
        self, recovery_id: str, *, owner: str, now: float, lease: float, batch: int
    ) -> Recovery | None:
        # The range is counted once, before the first batch, by a read: a long range takes a
        # while to count, and the writer (SQLite's one) must not wait for it.
        total = await self._read(lambda db: _count_if_new(db, recovery_id))

        async def op(db: Db) -> Recovery | None:
            row = await db.row(
                f"SELECT {rows.RECOVERY}, after_at, after_id, lease_owner FROM recoveries"
                f" WHERE id = ?{db.for_update}",
                (recovery_id,),
            )
            if row is None or row[-1] != owner or row[3] != "running":
                return None
            recovery, after_at, after_id = rows.recovery(row[:11]), row[11], row[12]
            subscription = await steps.get_subscription(db, recovery.subscription_id)
            if subscription is None or not subscription.enabled:
                reason = (
                    "the subscription was deleted"
                    if subscription is None
                    else "the subscription was disabled; enable it, then recover again"
                )
                await _finish(db, recovery_id, now, "failed", reason)
                return await _get(db, recovery_id)
            # The range, oldest first, after the last delivery handled.
            scope = (
                " FROM deliveries WHERE subscription_id = ? AND status = 'failed'"
                " AND created_at >= ? AND created_at < ?"
            )
            args: list[object] = [recovery.subscription_id, recovery.since, recovery.until]
            if recovery.total is None and total is not None:
                await db.count("UPDATE recoveries SET total = ? WHERE id = ?", (total, recovery_id))
            if after_at is not None:
                scope += " AND (created_at, id) > (?, ?)"
                args += [after_at, after_id]
            found = await db.rows(
                f"SELECT id, event_id, created_at, requeued_as{scope}"
                " ORDER BY created_at, id LIMIT ?",
                (*args, batch),
            )
            requeued = await _requeue(
                db, [r for r in found if r[3] is None], recovery.tenant, subscription.id, now
            )
            if found:
                await db.count(
                    "UPDATE recoveries SET requeued = requeued + ?, after_at = ?, after_id = ?,"
                    " lease_until = ? WHERE id = ?",
                    (requeued, found[-1][2], found[-1][0], now + lease, recovery_id),
                )
            if len(found) < batch:
                await _finish(db, recovery_id, now, "done", None)
            return await _get(db, recovery_id)

        return await self._write(op)

    async def release_recovery(self, recovery_id: str, *, owner: str) -> None:
        await self._write(
            lambda db: db.count(
                "UPDATE recoveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND lease_owner = ?",
                (recovery_id, owner),
            ),
            single=True,
        )


async def _requeue(db: Db, found: list[Any], tenant: str, subscription_id: str, now: float) -> int:
    """Queue a new delivery of each found one's event (locked: a purge deleting an event, or its
    payload, waits for this, and then sees the new delivery) and mark the found one; how many.
    An event whose payload the retention purged is passed over, as one deleted is."""
    if not found:
        return 0
    among, args = db.any_of("id", sorted({r[1] for r in found}))
    present = {
        r[0]
        for r in await db.rows(
            f"SELECT id FROM events WHERE {among} AND NOT ({PAYLOAD_GONE}){db.for_update}", args
        )
    }
    marks = []
    for delivery_id, event_id, _, _ in found:
        if event_id in present:
            (new_id,) = await db.queue(event_id, tenant, [subscription_id], now)
            marks.append((new_id, delivery_id))
    if marks:
        await db.many("UPDATE deliveries SET requeued_as = ? WHERE id = ?", marks)
    return len(marks)


async def _count_if_new(db: Db, recovery_id: str) -> int | None:
    """How many failed deliveries not yet queued again a recovery's range holds, if it has not
    been counted yet (else None)."""
    row = await db.row(
        "SELECT subscription_id, since, until FROM recoveries WHERE id = ? AND total IS NULL",
        (recovery_id,),
    )
    if row is None:
        return None
    count = await db.value(
        "SELECT COUNT(*) FROM deliveries WHERE subscription_id = ? AND status = 'failed'"
        " AND created_at >= ? AND created_at < ? AND requeued_as IS NULL",
        tuple(row),
    )
    return int(count)


async def _finish(db: Db, recovery_id: str, now: float, status: str, reason: str | None) -> None:
    await db.count(
        "UPDATE recoveries SET status = ?, reason = ?, finished_at = ?, lease_owner = NULL,"
        " lease_until = NULL WHERE id = ?",
        (status, reason, now, recovery_id),
    )


async def _get(db: Db, recovery_id: str) -> Recovery:
    row = await db.row(f"SELECT {rows.RECOVERY} FROM recoveries WHERE id = ?", (recovery_id,))
    return rows.recovery(row)
