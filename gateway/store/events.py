"""Events, as the shared store logic keeps them: each recorded with its deliveries in one
transaction (de-duplicated, ordered by resource, filtered per subscription), listed and read back,
and delivered again on request."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.store import ordering, rows, steps
from gateway.store.errors import PayloadPurged
from gateway.store.operations import Operations
from gateway.store.protocol import FilterCheck
from gateway.store.records import Delivery, EventFilter, EventPage, Position, Subscription
from gateway.store.sql import DEDUPE_LOCK, ORDER_LOCK, Db
from gateway.values import Event
from gateway.webhooks.filters import Filters, document

# The position (seq) of a tenant's first event received at or after a moment (arguments: the
# tenant, the moment): one probe of the (tenant, received_epoch) index; NULL without one.
POSITION_AT = (
    "(SELECT seq FROM events WHERE tenant = ? AND received_epoch >= ?"
    " ORDER BY received_epoch, seq LIMIT 1)"
)
LAST_POSITION = 2**63 - 1  # above every position (both stores' seq is a signed 64-bit integer)


class Events(Operations):
    """The event operations of `Store`, and an event's deliveries."""

    # Evaluates subscriptions' filters; the app sets one that counts failures in its metrics.
    filters: FilterCheck = Filters()

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
