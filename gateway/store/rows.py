"""Rows to values, shared by the SQLite and PostgreSQL stores (the same columns, the same types)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import orjson

from gateway.store import sql
from gateway.store.records import (
    ClaimedDelivery,
    Delivery,
    Position,
    Recovery,
    ResourceRecord,
    Subscription,
)
from gateway.values import Event

RESOURCE = "kind, id, tenant, backend, parent_id, attributes, created_at, updated_at"
EVENT = "id, type, tenant, backend, occurred_at, data, dedupe_key"
SUBSCRIPTION = (
    "id, tenant, url, event_types, description, enabled, disabled_reason, secret,"
    " previous_secret, previous_expires_at, failing_since, created_at, updated_at, filter,"
    " max_per_second, throttled_until, order_by"
)
DELIVERY = (
    "id, event_id, subscription_id, tenant, status, attempts, next_attempt_at, last_error,"
    " created_at"
)
DELIVERY_LISTED = f"{DELIVERY}, requeued_as"  # as the listings show it (claims need less)
RECOVERY = (
    "id, tenant, subscription_id, status, since, until, requeued, total, created_at, finished_at,"
    " reason"
)
ATTEMPT = sql.ATTEMPT
DELIVERY_JOINED = (
    "d.id, d.event_id, d.subscription_id, d.tenant, d.status, d.attempts, d.next_attempt_at,"
    " d.last_error, d.created_at,"
    " e.id, e.type, e.tenant, e.backend, e.occurred_at, e.data, e.dedupe_key, e.received_epoch,"
    " s.id, s.tenant, s.url, s.event_types, s.description, s.enabled, s.disabled_reason,"
    " s.secret, s.previous_secret, s.previous_expires_at, s.failing_since, s.created_at,"
    " s.updated_at, s.filter, s.max_per_second, s.throttled_until, s.order_by"
)


def page(found: Sequence[Any], limit: int) -> tuple[Sequence[Any], Position | None]:
    """Rows read with `LIMIT limit + 1`, each ending with its `seq`: the page's rows (without
    their seq) and where the next page starts (None when this is the last)."""
    rows = [row[:-1] for row in found[:limit]]
    return rows, Position(int(found[limit - 1][-1])) if len(found) > limit else None


def to_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def resource(row: Any) -> ResourceRecord:
    kind, resource_id, tenant, backend, parent_id, attributes, created_at, updated_at = row
    return ResourceRecord(
        kind,
        resource_id,
        tenant,
        backend,
        parent_id,
        orjson.loads(attributes),
        created_at,
        updated_at,
    )


def event(row: Any) -> Event:
    event_id, event_type, tenant, backend, occurred_at, data, dedupe_key = row
    payload = orjson.loads(data)  # JSON null once the retention purged it (migration 0008)
    return Event(
        id=event_id,
        type=event_type,
        tenant=tenant,
        backend=backend,
        occurred_at=occurred_at,
        data={} if payload is None else payload,
        dedupe_key=dedupe_key,
        payload_purged=payload is None,
    )


def event_values(event: Event) -> tuple[object, ...]:
    """The columns of EVENT, in order, to store `event`."""
    return (
        event.id, event.type, event.tenant, event.backend, event.occurred_at,
        to_json(event.data), event.dedupe_key,
    )  # fmt: skip


def subscription_values(s: Subscription) -> tuple[object, ...]:
    """The columns of SUBSCRIPTION, in order, to store `s`."""
    return (
        s.id, s.tenant, s.url, to_json(list(s.event_types)), s.description, s.enabled,
        s.disabled_reason, s.secret, s.previous_secret, s.previous_expires_at, s.failing_since,
        s.created_at, s.updated_at, s.filter, s.max_per_second, s.throttled_until, s.order_by,
    )  # fmt: skip


def subscription(row: Any) -> Subscription:
    (sid, tenant, url, types, description, enabled, reason, secret, previous, expires, failing,
     created, updated, expression, most, throttled, order_by) = row  # fmt: skip
    return Subscription(
        sid, tenant, url, tuple(orjson.loads(types)), description, bool(enabled), reason,
        secret, previous, expires, failing, created, updated, expression, most, throttled,
        order_by,
    )  # fmt: skip


def delivery(row: Any) -> Delivery:
    """A delivery from the columns of DELIVERY (or DELIVERY_LISTED, its attempts then added)."""
    if len(row) > 9:
        return attrs.evolve(Delivery(*row[:9]), requeued_as=row[9])
    return Delivery(*row)


def recovery(row: Any) -> Recovery:
    return Recovery(*row)


def claimed(row: Any) -> ClaimedDelivery:
    return ClaimedDelivery(
        delivery=delivery(row[:9]),
        event=event(row[9:16]),
        subscription=subscription(row[17:]),
        event_received=float(row[16]),
    )
