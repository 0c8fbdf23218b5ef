"""Webhook subscriptions, as the shared store logic keeps them: created within a tenant's limit,
listed in creation order, changed, disabled and deleted (their undelivered deliveries failed)."""

from __future__ import annotations

import time

from gateway.store import rows, steps
from gateway.store.operations import Operations
from gateway.store.records import Position, Subscription, SubscriptionChanges, SubscriptionPage
from gateway.store.rows import to_json
from gateway.store.sql import SUBSCRIPTIONS_LOCK, Db, timestamp


class Subscriptions(Operations):
    """The subscription operations of `Store`."""

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
