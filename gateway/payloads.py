"""The bodies of the operations the core serves itself and of its own events, as the contract's
schemas name them.

Frozen attrs values that `gateway.wire` writes and reads (field names in camelCase); an optional
property the contract leaves out when absent is an `omit_if_none` field, every other None is
written as null.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from gateway import values
from gateway.redaction import shown_url
from gateway.store import records
from gateway.wire import omit_if_none

# --- operations ----------------------------------------------------------------------------------


@attrs.frozen
class Health:
    status: str = "ok"


@attrs.frozen
class ReadinessCheck:
    ok: bool
    detail: str | None = omit_if_none()


@attrs.frozen
class Readiness:
    status: str  # ready or not_ready
    checks: Mapping[str, ReadinessCheck]


# --- backends ------------------------------------------------------------------------------------


@attrs.frozen
class CallbackHealth:
    state: str  # synced, pending, failed or not_applicable
    detail: str | None = omit_if_none()


@attrs.frozen
class BackendHealth:
    breaker: str
    callbacks: CallbackHealth


@attrs.frozen
class Backend:
    name: str
    version: str
    description: str
    capabilities: Sequence[str]
    event_types: Sequence[str]
    configured: bool
    health: BackendHealth


@attrs.frozen
class BackendList:
    items: Sequence[Backend]


# --- events --------------------------------------------------------------------------------------


@attrs.frozen
class EventType:
    type: str
    description: str
    backend: str | None


@attrs.frozen
class EventTypeList:
    items: Sequence[EventType]


@attrs.frozen
class Event:
    """An event as subscribers receive it (the webhook body, signed) and callers read it."""

    id: str
    type: str
    tenant: str
    backend: str | None
    occurred_at: str
    # Both left out, or one: `data` until the store's retention purges it, then `payloadPurged`.
    data: Mapping[str, Any] | None = omit_if_none()
    payload_purged: bool | None = omit_if_none()

    @classmethod
    def of(cls, event: values.Event) -> Event:
        e = event
        if e.payload_purged:
            return cls(e.id, e.type, e.tenant, e.backend, e.occurred_at, payload_purged=True)
        return cls(e.id, e.type, e.tenant, e.backend, e.occurred_at, e.data)


@attrs.frozen
class TestEventData:
    subscription_id: str
    message: str


@attrs.frozen
class SubscriptionDisabledData:
    subscription_id: str
    url: str
    reason: str


@attrs.frozen
class EventPage:
    items: Sequence[Event]
    next_cursor: str | None


# --- deliveries ----------------------------------------------------------------------------------


def iso_seconds(moment: float) -> str:
    """A unix time as the contract's date-time, to the second."""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


def iso_millis(moment: float) -> str:
    """A unix time as the contract's date-time, to the millisecond (a time a caller gave back
    as a bound, or one compared with such bounds)."""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="milliseconds")


@attrs.frozen
class DeliveryAttempt:
    number: int
    at: str
    status: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None

    @classmethod
    def of(cls, attempt: records.Attempt) -> DeliveryAttempt:
        # Stored with a decimal; whole milliseconds on the wire.
        duration = round(attempt.duration_ms)
        a = attempt
        return cls(a.number, a.at, a.status, duration, a.error, a.response_excerpt)


@attrs.frozen
class Delivery:
    id: str
    event_id: str
    subscription_id: str
    status: str
    attempts: Sequence[DeliveryAttempt]
    next_attempt_at: str | None
    created_at: str
    requeued_as: str | None = omit_if_none()

    @classmethod
    def of(cls, delivery: records.Delivery) -> Delivery:
        due = delivery.next_attempt_at
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            subscription_id=delivery.subscription_id,
            status=delivery.status,
            attempts=[DeliveryAttempt.of(a) for a in delivery.attempt_log],
            next_attempt_at=None if due is None else iso_seconds(due),
            created_at=iso_millis(delivery.created_at),
            requeued_as=delivery.requeued_as,
        )


@attrs.frozen
class DeliveryList:
    items: Sequence[Delivery]


@attrs.frozen
class DeliveryPage:
    items: Sequence[Delivery]
    next_cursor: str | None


@attrs.frozen
class RecoveryInput:
    since: str
    until: str | None = None


@attrs.frozen
class Recovery:
    id: str
    subscription_id: str
    status: str
    since: str
    until: str
    requeued: int
    total: int | None
    created_at: str
    finished_at: str | None
    reason: str | None = omit_if_none()

    @classmethod
    def of(cls, r: records.Recovery) -> Recovery:
        finished = None if r.finished_at is None else iso_millis(r.finished_at)
        return cls(
            r.id, r.subscription_id, r.status, iso_millis(r.since), iso_millis(r.until),
            r.requeued, r.total, iso_millis(r.created_at), finished, r.reason,
        )  # fmt: skip


@attrs.frozen
class RedeliveryInput:
    subscription_id: str | None = None


@attrs.frozen
class RedeliveryResult:
    deliveries: Sequence[Delivery]


# --- subscriptions -------------------------------------------------------------------------------


@attrs.frozen
class Subscription:
    """A subscription without its secret."""

    id: str
    url: str
    event_types: Sequence[str]
    filter: str | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str
    max_per_second: float | None
    throttled_until: str | None  # while its subscriber's 429 or 503 holds it back
    order_by: str | None

    @classmethod
    def of(cls, s: records.Subscription) -> Subscription:
        return cls(**_subscription_fields(s))


@attrs.frozen
class SubscriptionWithSecret(Subscription):
    """A subscription with its signing secret (after the other fields), answered on creation."""

    secret: str

    @classmethod
    def of(cls, s: records.Subscription) -> SubscriptionWithSecret:
        return cls(**_subscription_fields(s), secret=s.secret)


def _subscription_fields(s: records.Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "url": shown_url(s.url),
        "event_types": s.event_types,
        "filter": s.filter,
        "description": s.description,
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "max_per_second": s.max_per_second,
        "throttled_until": (
            iso_seconds(s.throttled_until)
            if s.throttled_until is not None and s.throttled_until > time.time()
            else None
        ),
        "order_by": s.order_by,
    }


@attrs.frozen
class SubscriptionPage:
    items: Sequence[Subscription]
    next_cursor: str | None


@attrs.frozen
class SubscriptionInput:
    url: str
    event_types: list[str]
    description: str | None = None
    filter: str | None = None
    max_per_second: float | None = None
    order_by: str | None = None


@attrs.frozen
class SecretRotationInput:
    grace_seconds: int | None = None  # None: the configured default


@attrs.frozen
class SecretRotation:
    secret: str
    previous_secret_expires_at: str
