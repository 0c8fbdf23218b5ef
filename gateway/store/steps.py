"""Steps that several store operations take alike, on one `sql.Db`: reading one record, failing
a subscription's undelivered deliveries, completing attempts, listing an event's deliveries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs
import orjson

from gateway.store import rows, throttle
from gateway.store.records import (
    Attempt,
    AttemptOutcome,
    Delivery,
    IdempotentRecord,
    ResourceRecord,
    Subscription,
)
from gateway.store.sql import Db


async def get_resource(db: Db, kind: str, resource_id: str) -> ResourceRecord | None:
    row = await db.row(
        f"SELECT {rows.RESOURCE} FROM resources WHERE kind = ? AND id = ?", (kind, resource_id)
    )
    return rows.resource(row) if row else None


async def get_idempotent(db: Db, tenant: str, key: str) -> IdempotentRecord | None:
    row = await db.row(
        "SELECT tenant, key, operation, fingerprint, state, status, headers, body"
        " FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at > ?",
        (tenant, key, time.time()),
    )
    if row is None:
        return None
    tenant, key, operation, fingerprint, state, status, headers, body = row
    return IdempotentRecord(
        tenant, key, operation, fingerprint, state, status, orjson.loads(headers or "{}"), body
    )


async def subscriptions(db: Db, tenant: str, *, enabled_only: bool) -> list[Subscription]:
    """The tenant's subscriptions (its enabled ones only), oldest first."""
    query = f"SELECT {rows.SUBSCRIPTION} FROM subscriptions WHERE tenant = ?"
    if enabled_only:
        query += " AND enabled = TRUE"
    return [rows.subscription(row) for row in await db.rows(query + " ORDER BY seq", (tenant,))]


async def filtered_subscriptions(db: Db, tenant: str) -> list[Subscription]:
    """The tenant's enabled subscriptions that have a filter, oldest first."""
    return [
        rows.subscription(row)
        for row in await db.rows(
            f"SELECT {rows.SUBSCRIPTION} FROM subscriptions WHERE tenant = ? AND enabled = TRUE"
            " AND filter IS NOT NULL ORDER BY seq",
            (tenant,),
        )
    ]


async def get_subscription(
    db: Db, subscription_id: str, tenant: str | None = None
) -> Subscription | None:
    row = await db.row(
        f"SELECT {rows.SUBSCRIPTION} FROM subscriptions WHERE id = ?", (subscription_id,)
    )
    if row is None:
        return None
    found = rows.subscription(row)
    return found if tenant is None or found.tenant == tenant else None


async def fail_undelivered(db: Db, subscription_id: str, reason: str) -> None:
    await db.count(
        "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?,"
        " lease_owner = NULL, lease_until = NULL, order_key = NULL, updated_at = ?"
        " WHERE subscription_id = ? AND status IN ('pending', 'delivering')",
        (reason, time.time(), subscription_id),
    )


async def complete(db: Db, outcomes: Sequence[AttemptOutcome], now: float) -> None:
    """Record the attempts and move their deliveries on (`Store.complete_attempts`)."""
    # Rows are locked in id order, so that two processes' batches cannot deadlock on each other.
    made = sorted(
        ((o, o.attempt) for o in outcomes if o.attempt is not None), key=lambda m: m[0].delivery_id
    )
    handed_back = sorted(o.delivery_id for o in outcomes if o.attempt is None)
    if made:
        await db.many(
            db.replace("attempts", rows.ATTEMPT, key="delivery_id, number"),
            [
                (
                    o.delivery_id,
                    a.number,
                    a.at,
                    a.status,
                    a.duration_ms,
                    a.error,
                    a.response_excerpt,
                )
                for o, a in made
            ],
        )
        # Only a delivery still leased moves on: one failed by a disable stays failed.
        # A final one leaves its key's order (`gateway.store.ordering`): the next one is the head.
        await db.many(
            "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?,"
            " last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?,"
            " order_key = CASE WHEN ? THEN order_key END WHERE id = ? AND status = 'delivering'",
            [
                (
                    o.status,
                    a.number,
                    o.next_attempt_at,
                    a.error,
                    now,
                    o.status == "pending",
                    o.delivery_id,
                )
                for o, a in made
            ],
        )
    if handed_back:
        among, args = db.any_of("id", handed_back)
        await db.count(
            "UPDATE deliveries SET status = 'pending', lease_owner = NULL, lease_until = NULL,"
            f" updated_at = ? WHERE {among} AND status = 'delivering'",
            (now, *args),
        )
        await db.notify()
    await throttle.hold(db, outcomes)
    if made:
        # A stable sort: one subscription's outcomes keep their order (the last one counts).
        # Only a change of state writes the row: a success clears `failing_since` if it was set,
        # a failure sets it if it was not; a healthy subscription's successes (nearly every
        # delivery) leave its row alone, so PostgreSQL makes no dead tuple of it per delivery.
        by_subscription = sorted(made, key=lambda m: m[0].subscription_id)
        await db.many(
            "UPDATE subscriptions SET failing_since = CASE WHEN ? THEN NULL"
            " ELSE COALESCE(failing_since, ?) END"
            " WHERE id = ? AND (failing_since IS NOT NULL) = ?",
            [
                (o.subscription_succeeded, now, o.subscription_id, o.subscription_succeeded)
                for o, _ in by_subscription
            ],
        )


async def list_deliveries(db: Db, tenant: str, event_id: str) -> list[Delivery]:
    """The event's deliveries in the tenant, oldest first, each with its attempts."""
    return await listed(
        db,
        f"SELECT {rows.DELIVERY_LISTED} FROM deliveries WHERE tenant = ? AND event_id = ?"
        f" ORDER BY created_at, id{db.binary}",
        (tenant, event_id),
    )


async def listed(db: Db, query: str, args: Sequence[object]) -> list[Delivery]:
    """Deliveries from `query`'s rows (`rows.DELIVERY_LISTED`), in its order, each with its
    attempts (read with them: `Db.listed_deliveries`)."""
    return [
        attrs.evolve(rows.delivery(row), attempt_log=tuple(Attempt(*a[1:]) for a in attempts))
        for row, attempts in await db.listed_deliveries(query, args)
    ]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (what SQLite's `json_patch` does), for resource attributes."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
