"""The store's logic, written once for SQLite and PostgreSQL: every operation of `Store` as steps
on a `sql.Db`, in neutral SQL.

A store subclasses `SQLStore` with how an operation runs (its connections, its transactions: the
concurrency primitives) and a `Db` in its dialect. SQLite is the reference behaviour; what must hold
across processes on one PostgreSQL database is asked of the dialect where it happens (`Db.lock`,
`Db.claim`, `Db.notify`).
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import orjson

from gateway.store import (
    AttemptOutcome,
    ClaimedDelivery,
    Delivery,
    EventFilter,
    EventPage,
    FilterCheck,
    IdempotentRecord,
    PayloadPurged,
    Position,
    ResourceRecord,
    Subscription,
    SubscriptionChanges,
    SubscriptionPage,
    ordering,
    recovery,
    retention,
    rows,
    steps,
    throttle,
    traces,
)
from gateway.store.children import creation_order
from gateway.store.rows import to_json
from gateway.store.sql import Claim, Db, Row, timestamp
from gateway.values import Event
from gateway.webhooks.filters import Filters, document

T = TypeVar("T")
Op = Callable[[Db], Coroutine[Any, Any, T]]
# The most rows `list_resources` reads as a lookup (see `SQLStore._lookup`).
FEW_CHILDREN = 32

# Lock classes of `Db.lock` (PostgreSQL's advisory locks: keep the numbers, replicas share them).
DEDUPE_LOCK = 1  # (tenant, dedupe key): a callback's check and insert
SUBSCRIPTIONS_LOCK = 2  # a tenant: its subscription count and a create
ORDER_LOCK = 3  # (tenant, an event's key): its events recorded one after another

# The position (seq) of a tenant's first event received at or after a moment (arguments: the
# tenant, the moment): one probe of the (tenant, received_epoch) index; NULL without one.
POSITION_AT = (
    "(SELECT seq FROM events WHERE tenant = ? AND received_epoch >= ?"
    " ORDER BY received_epoch, seq LIMIT 1)"
)
LAST_POSITION = 2**63 - 1  # above every position (both stores' seq is a signed 64-bit integer)


class SQLStore(retention.Purging, recovery.Recovering, traces.TraceContexts):
    """Every data operation of `Store`; a subclass adds open, close and listen."""

    # Evaluates subscriptions' filters; the app sets one that counts failures in its metrics.
    filters: FilterCheck = Filters()
    writes_in_order = False
    # The store's SQL dialect, whose text and arguments a query may take before it runs.
    dialect: ClassVar[type[Db]]

    @abc.abstractmethod
    async def _read(self, op: Op[T]) -> T:
        """Run `op`, which only reads; its result."""

    @abc.abstractmethod
    async def _write(self, op: Op[T], *, single: bool = False) -> T:
        """Run `op` in a transaction; its result once committed. `single`: it is one statement,
        atomic by itself, so a store may spare the transaction's round trips."""

    async def _lookup(self, op: Op[T]) -> T:
        """Run `op`, which reads a few rows at most by one index range that stops there (a row
        by a unique key, or `FEW_CHILDREN` under a parent), whatever the store's size; a store
        may run it where a longer read would not be allowed to run."""
        return await self._read(op)

    async def _lookup_rows(self, query: str, args: Sequence[object]) -> Sequence[Row]:
        """The rows of `query`, one statement that is a lookup (`_lookup`); a store may spare it
        an operation's plumbing."""
        return await self._lookup(lambda db: db.rows(query, args))

    async def schema_version(self) -> int:
        version = await self._read(
            lambda db: db.value("SELECT MAX(version) FROM schema_migrations")
        )
        return int(version or 0)

    async def ping(self) -> None:
        await self._read(lambda db: db.value("SELECT 1"))

    # -- resources ------------------------------------------------------------------------------

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None:
        return await self._lookup(lambda db: steps.get_resource(db, kind, resource_id))

    async def claim_resource(
        self, kind: str, resource_id: str, *, tenant: str, backend: str, parent_id: str | None
    ) -> ResourceRecord:
        record, _ = await self.put_resource(
            kind, resource_id, tenant=tenant, backend=backend, parent_id=parent_id, attributes={}
        )
        return record

    async def put_resource(
        self,
        kind: str,
        resource_id: str,
        *,
        tenant: str,
        backend: str,
        parent_id: str | None,
        attributes: Mapping[str, Any],
    ) -> tuple[ResourceRecord, bool]:
        async def op(db: Db) -> tuple[ResourceRecord, bool]:
            now = timestamp()
            created = await db.count(
                "INSERT INTO resources (kind, id, tenant, backend, parent_id, attributes,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (kind, resource_id, tenant, backend, parent_id, to_json(attributes), now, now),
            )
            if not created:
                current = await db.row(
                    "SELECT tenant, attributes FROM resources WHERE kind = ? AND id = ?"
                    f"{db.for_update}",
                    (kind, resource_id),
                )
                if current is not None and current[0] == tenant and attributes:
                    merged = steps.merge_patch(orjson.loads(current[1]), dict(attributes))
                    await db.count(
                        "UPDATE resources SET attributes = ?, updated_at = ?"
                        " WHERE kind = ? AND id = ?",
                        (to_json(merged), now, kind, resource_id),
                    )
            record = await steps.get_resource(db, kind, resource_id)
            assert record is not None
            return record, created == 1

        return await self._write(op)

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        deleted = await self._write(
            lambda db: db.count(
                "DELETE FROM resources WHERE kind = ? AND id = ? AND tenant = ?"
                " AND attributes = '{}'",
                (kind, resource_id, tenant),
            ),
            single=True,
        )
        return deleted == 1

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        async def op(db: Db) -> ResourceRecord | None:
            current = await db.value(
                f"SELECT attributes FROM resources WHERE kind = ? AND id = ?{db.for_update}",
                (kind, resource_id),
            )
            if current is None:
                return None
            merged = steps.merge_patch(orjson.loads(current), dict(attributes))
            await db.count(
                "UPDATE resources SET attributes = ?, updated_at = ? WHERE kind = ? AND id = ?",
                (to_json(merged), timestamp(), kind, resource_id),
            )
            return await steps.get_resource(db, kind, resource_id)

        return await self._write(op)

    def known_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> list[ResourceRecord] | None:
        return None  # replicas write too: only the database knows

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        if not parent_ids:
            return []
        args = (*self.dialect.any_of_args(parent_ids), kind, tenant)
        # A parent's children are a few rows as a rule: read as a lookup (on SQLite, on the
        # loop's thread, sparing the reader thread's hop), bounded so that a parent with many
        # children never holds the loop; those are read again, in full, as any listing is.
        if len(parent_ids) <= FEW_CHILDREN:
            query = _children(self.dialect, len(parent_ids), FEW_CHILDREN + 1)
            found = await self._lookup_rows(query, args)
            if len(found) <= FEW_CHILDREN:
                # The index range stops at the limit, and the few are sorted here: SQLite's
                # sorter costs more than the whole lookup (26 k instructions of 47 k, with no
                # row). Python compares text by code point, as BINARY and "C" do UTF-8's bytes.
                return sorted([rows.resource(row) for row in found], key=creation_order)
        query = _children(self.dialect, len(parent_ids), None)
        return [rows.resource(row) for row in await self._read(lambda db: db.rows(query, args))]

    # -- idempotency keys -----------------------------------------------------------------------

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        async def op(db: Db) -> IdempotentRecord | None:
            now = time.time()
            await db.count(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at <= ?",
                (tenant, key, now),
            )
            # Another replica's claim in flight: ON CONFLICT waits for it, then sees it.
            claimed = await db.count(
                "INSERT INTO idempotency_keys (tenant, key, operation, fingerprint, state,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)"
                " ON CONFLICT DO NOTHING",
                (tenant, key, operation, fingerprint, timestamp(), now + lease),
            )
            return None if claimed else await steps.get_idempotent(db, tenant, key)

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
            lambda db: db.count(
                "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?,"
                " expires_at = ? WHERE tenant = ? AND key = ?",
                (status, to_json(dict(headers)), body, time.time() + ttl, tenant, key),
            ),
            single=True,
        )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        await self._write(
            lambda db: db.count(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND state = 'running'",
                (tenant, key),
            ),
            single=True,
        )

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None:
        return await self._read(lambda db: steps.get_idempotent(db, tenant, key))

    # -- events ---------------------------------------------------------------------------------

    async def record_event(
        self, event: Event, *, dedupe_window: float, only_subscription: str | None = None
    ) -> bool:
        async def op(db: Db) -> bool:
            if event.dedupe_key is not None:
                # Check and insert as one step across processes: the same callback received by
                # two of them at once is stored once. The lock comes first so that the check
                # sees what the lock's previous holder committed.
                await db.lock(DEDUPE_LOCK, f"{len(event.tenant)}:{event.tenant}:{event.dedupe_key}")
            key = ordering.resource_key(event.data) if only_subscription is None else None
            if key is not None:
                # One key's events recorded one after another: their positions are the order
                # they commit in, which ordered deliveries follow (`gateway.store.ordering`).
                await db.lock(ORDER_LOCK, f"{len(event.tenant)}:{event.tenant}:{key}")
            now = time.time()
            seq = await db.insert_event(event, now, now - dedupe_window)
            if seq is None:
                return False
            if only_subscription is not None:
                await db.queue(event.id, event.tenant, [only_subscription], now)
                return True
            order = None if key is None else (key, seq)
            if not await db.queue_matching(event, now, order):  # those without a filter
                return True  # the tenant has none with a filter (nearly all)
            filtered = await steps.filtered_subscriptions(db, event.tenant)
            kept = self._kept(event, filtered)
            queued = await db.queue(event.id, event.tenant, kept, now)
            ordered = {s.id for s in filtered if s.order_by is not None}
            marked = [d for d, s in zip(queued, kept, strict=True) if s in ordered]
            if order is not None and marked:  # filtered and ordered: the same key and position
                among, args = db.any_of("id", marked)
                await db.count(
                    f"UPDATE deliveries SET order_key = ?, order_seq = ? WHERE {among}",
                    (*order, *args),
                )
            return True

        return await self._write(op)

    def _kept(self, event: Event, subscriptions: Sequence[Subscription]) -> list[str]:
        """The ids of `subscriptions` (enabled ones) whose types and filter keep `event`: each
        filter evaluated once, on the event as subscribers receive it."""
        candidates = [s for s in subscriptions if s.matches(event.type)]
        if not candidates:
            return []
        doc = document(event)
        return [
            s.id
            for s in candidates
            if s.filter is None or self.filters.matches(s.id, s.filter, doc)
        ]

    async def get_event(self, tenant: str, event_id: str) -> Event | None:
        row = await self._read(
            lambda db: db.row(
                f"SELECT {rows.EVENT} FROM events WHERE tenant = ? AND id = ?", (tenant, event_id)
            )
        )
        return rows.event(row) if row else None

    async def list_events(
        self,
        tenant: str,
        *,
        event_type: str | None,
        after: Position | None,
        limit: int,
        where: EventFilter | None = None,
    ) -> EventPage:
        where = where or EventFilter()

        async def op(db: Db) -> EventPage:
            # Newest first: a later page continues below the position the last one ended at.
            # Each filter is the leading part of an index, so the read is one range from the
            # highest position the filters allow, down to the page size.
            query = f"SELECT {rows.EVENT}, seq FROM events WHERE tenant = ?"
            args: list[object] = [tenant]
            # A time is taken to a position by a subquery (`POSITION_AT`) of the same statement:
            # one round trip on PostgreSQL. Nothing received since `since`: a NULL bound, an
            # empty range; nothing received from `until` on: no upper bound.
            if where.since is not None:
                query += f" AND seq >= {POSITION_AT}"
                args += [tenant, where.since]
            if where.until is not None:
                query += f" AND seq < COALESCE({POSITION_AT}, ?)"
                args += [tenant, where.until, LAST_POSITION]
            if after is not None:
                query += " AND seq < ?"
                args.append(after.seq)
            order = "seq DESC"
            if event_type and where.product_id is None and where.user_id is None:
                # A range that holds one type, in the (tenant, type, seq) index's order: the one
                # index that reads it in order. With `type = ?` PostgreSQL took tenant and type
                # for independent shares of the table and walked its primary key backwards
                # filtering both: to the very end for a type the tenant never had (1.6 s at 1M).
                query += " AND type >= ? AND type <= ?"
                args += [event_type, event_type]
                order = "type DESC, seq DESC"
            elif event_type:
                query += " AND type = ?"
                args.append(event_type)
            for key, value in (("productId", where.product_id), ("userId", where.user_id)):
                if value is not None:
                    field = db.json_text("data", key)  # as the index on it spells it
                    query += f" AND {field} = ? AND {field} IS NOT NULL"
                    args.append(value)
            query += f" ORDER BY {order} LIMIT ?"
            args.append(limit + 1)
            found, next_position = rows.page(await db.rows(query, args), limit)
            return EventPage([rows.event(row) for row in found], next_position)

        return await self._range(op)

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self, subscription: Subscription, *, limit: int | None = None
    ) -> bool:
        s = subscription

        async def op(db: Db) -> bool:
            if limit is not None:
                # Count and insert as one step across processes (the lock first, as above).
                await db.lock(SUBSCRIPTIONS_LOCK, s.tenant)
                count = await db.value(
                    "SELECT COUNT(*) FROM subscriptions WHERE tenant = ?", (s.tenant,)
                )
                if count >= limit:
                    return False
            await db.insert_subscription(rows.subscription_values(s))
            return True

        return await self._write(op, single=limit is None)

    async def get_subscription(self, tenant: str, subscription_id: str) -> Subscription | None:
        return await self._read(lambda db: steps.get_subscription(db, subscription_id, tenant))

    async def list_subscriptions(
        self, tenant: str, *, after: Position | None, limit: int
    ) -> SubscriptionPage:
        found = await self._range(
            lambda db: db.rows(
                f"SELECT {rows.SUBSCRIPTION}, seq FROM subscriptions WHERE tenant = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (tenant, after.seq if after else 0, limit + 1),
            )
        )
        items, next_position = rows.page(found, limit)
        return SubscriptionPage([rows.subscription(row) for row in items], next_position)

    async def update_subscription(
        self, tenant: str, subscription_id: str, changes: SubscriptionChanges
    ) -> Subscription | None:
        changed = list(changes.items())
        sets = [f"{name} = ?" for name, _ in changed]
        values = [to_json(list(v)) if isinstance(v, tuple) else v for _, v in changed]  # types
        if changes.enabled is True:
            sets += ["disabled_reason = NULL", "failing_since = NULL"]
        if "max_per_second" in dict(changed):  # a new rate starts with a full bucket
            sets += ["tokens = NULL", "tokens_at = NULL", "held_until = throttled_until"]

        async def op(db: Db) -> Subscription | None:
            await db.count(
                f"UPDATE subscriptions SET {', '.join([*sets, 'updated_at = ?'])}"
                " WHERE tenant = ? AND id = ?",
                (*values, timestamp(), tenant, subscription_id),
            )
            return await steps.get_subscription(db, subscription_id, tenant)

        return await self._write(op)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        async def op(db: Db) -> bool:
            deleted = await db.count(
                "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, subscription_id)
            )
            if deleted:
                await steps.fail_undelivered(db, subscription_id, "subscription deleted")
                # Its deliveries and attempts go later, in the purge's small batches.
                await db.count(
                    "INSERT INTO deleted_subscriptions (id, deleted_at) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (subscription_id, time.time()),
                )
            return bool(deleted)

        return await self._write(op)

    async def disable_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        async def op(db: Db) -> Subscription | None:
            changed = await db.count(
                "UPDATE subscriptions SET enabled = FALSE, disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND enabled = TRUE",
                (reason, timestamp(), subscription_id),
            )
            if not changed:
                return None
            await steps.fail_undelivered(db, subscription_id, f"subscription disabled: {reason}")
            return await steps.get_subscription(db, subscription_id)

        return await self._write(op)

    # -- deliveries -----------------------------------------------------------------------------

    async def claim_deliveries(
        self,
        *,
        owner: str,
        lease: float,
        limit: int,
        exclude: Sequence[str],
        now: float | None = None,
        per_tenant: int | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> Sequence[ClaimedDelivery]:
        most = limit if per_tenant is None else per_tenant

        async def claim(db: Db) -> tuple[float, Sequence[Row]]:
            # By default the moment the claim runs, not the one it was asked at: queued behind
            # writes (SQLite's one writer), it takes what they queued, in the same transaction.
            at = time.time() if now is None else now
            return at, await db.claim(Claim(owner, at, lease, limit, exclude, most, busy or {}))

        at, found = await self._write(claim, single=True)
        claimed = [rows.claimed(row) for row in found]
        if any(c.subscription.max_per_second is not None for c in claimed):
            # Their buckets, in a transaction of their own: a claim without throttled
            # subscriptions (nearly all) stays one statement.
            return await self._write(lambda db: throttle.take(db, claimed, owner, at))
        return claimed

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        if outcomes:
            await self._write(lambda db: steps.complete(db, outcomes, now))

    async def list_deliveries(self, tenant: str, event_id: str) -> Sequence[Delivery]:
        return await self._read(lambda db: steps.list_deliveries(db, tenant, event_id))

    async def redeliver(
        self, tenant: str, event_id: str, subscription_id: str | None
    ) -> Sequence[Delivery]:
        async def op(db: Db) -> list[Delivery]:
            # Locked: a purge deleting the event waits for the deliveries queued here, and takes
            # them with it (never leaves them without their event).
            found = await db.row(
                f"SELECT {rows.EVENT} FROM events WHERE tenant = ? AND id = ?{db.for_update}",
                (tenant, event_id),
            )
            if found is None:
                return []
            event = rows.event(found)
            if event.payload_purged:
                raise PayloadPurged(event_id)
            enabled = await steps.subscriptions(db, tenant, enabled_only=True)
            # One named subscription gets the event again whatever its filter: it was asked for.
            if subscription_id:
                targets = [s.id for s in enabled if s.id == subscription_id]
            else:
                targets = self._kept(event, enabled)
            ids = set(await db.queue(event_id, tenant, targets, time.time()))
            return [d for d in await steps.list_deliveries(db, tenant, event_id) if d.id in ids]

        return await self._write(op)

    async def queue_depth(self) -> int:
        count = await self._read(
            lambda db: db.value(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering')"
            )
        )
        return int(count or 0)


@functools.lru_cache(maxsize=4 * FEW_CHILDREN)
def _children(dialect: type[Db], parents: int, limit: int | None) -> str:
    """`list_resources`' query, built once per shape (every proxied listing reads children):
    the same str every time, whose hash sqlite3's statement cache and `sql.numbered` keep."""
    among = dialect.any_of_text("parent_id", parents)
    query = f"SELECT {rows.RESOURCE} FROM resources WHERE {among} AND kind = ? AND tenant = ?"
    if limit is None:
        return f"{query} ORDER BY created_at{dialect.binary}, id{dialect.binary}"
    return f"{query} LIMIT {limit}"
