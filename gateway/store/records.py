"""The store's values: what its operations take and give back (records, pages and their
positions, changes, outcomes), plain and frozen, with no knowledge of any database."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from gateway.values import Event


@attrs.frozen
class ResourceRecord:
    """A resource created through the gateway: who owns it, which backend serves it, and what
    the backend keeps about it (`attributes`, JSON)."""

    kind: str
    id: str
    tenant: str
    backend: str
    parent_id: str | None
    attributes: Mapping[str, Any]
    created_at: str
    updated_at: str


@attrs.frozen
class IdempotentRecord:
    """The first request made with an Idempotency-Key, and its answer once it has one."""

    tenant: str
    key: str
    operation: str
    fingerprint: str
    state: str  # running or done
    status: int | None
    headers: Mapping[str, str]
    body: bytes | None


@attrs.frozen
class Position:
    """Where a page of a list ended: the stored sequence number of its last item. The next page
    starts after it, in the list's order. Callers see it only as an opaque cursor
    (`gateway.cursors`)."""

    seq: int


@attrs.frozen
class EventPage:
    items: Sequence[Event]
    next_position: Position | None


@attrs.frozen
class EventFilter:
    """Which of a tenant's events `list_events` keeps beyond their type: those received from
    the first event at or after `since` up to the first one at or after `until` (unix seconds,
    each taken to a position in the events' order, as a log's offsets for times are: events are
    stored in the order they are received, so this is the time filter, as one range), and those
    concerning `product_id` or `user_id` (the `productId` or `userId` of their data)."""

    since: float | None = None
    until: float | None = None
    product_id: str | None = None
    user_id: str | None = None


WILDCARD = "*"


@attrs.frozen
class Subscription:
    """A tenant's webhook endpoint. Secrets are `whsec_...`; `previous_secret` still signs until
    `previous_expires_at` (unix seconds) after a rotation."""

    id: str
    tenant: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_expires_at: float | None
    failing_since: float | None
    created_at: str
    updated_at: str
    filter: str | None = None  # a JMESPath expression on the event (gateway.webhooks.filters)
    max_per_second: float | None = None  # deliveries a second at most (None: as fast as it goes)
    throttled_until: float | None = None  # unix seconds: held by the subscriber's 429 or 503
    order_by: str | None = None  # "resource": one at a time per resource (`store.ordering`)

    def matches(self, event_type: str) -> bool:
        return WILDCARD in self.event_types or event_type in self.event_types

    def signing_secrets(self, now: float) -> tuple[str, ...]:
        if self.previous_secret and (self.previous_expires_at or 0) > now:
            return (self.secret, self.previous_secret)
        return (self.secret,)


class Unset(enum.Enum):
    """The type of `UNSET`: a field a change leaves as it is (None is a value of its own)."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


@attrs.frozen
class SubscriptionChanges:
    """What `update_subscription` changes: every field left `UNSET` stays as it is; None clears
    the fields that may be empty. Enabling clears the failure state as well."""

    url: str | Unset = UNSET
    event_types: tuple[str, ...] | Unset = UNSET
    description: str | Unset | None = UNSET
    enabled: bool | Unset = UNSET
    secret: str | Unset = UNSET
    previous_secret: str | Unset | None = UNSET
    previous_expires_at: float | Unset | None = UNSET
    filter: str | Unset | None = UNSET
    max_per_second: float | Unset | None = UNSET
    order_by: str | Unset | None = UNSET

    def items(self) -> Iterator[tuple[str, object]]:
        """(column, value) of each field that is set, in declaration order."""
        for field in attrs.fields(SubscriptionChanges):
            value = getattr(self, field.name)
            if value is not UNSET:
                yield field.name, value


@attrs.frozen
class SubscriptionPage:
    items: Sequence[Subscription]
    next_position: Position | None


@attrs.frozen
class Attempt:
    number: int
    at: str
    status: int | None
    duration_ms: float
    error: str | None
    response_excerpt: str | None


@attrs.frozen
class Delivery:
    id: str
    event_id: str
    subscription_id: str
    tenant: str
    status: str  # pending, delivering, succeeded, failed
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    attempt_log: tuple[Attempt, ...] = ()
    requeued_as: str | None = None  # the delivery a recovery queued in its place


@attrs.frozen
class DeliveryPosition:
    """Where a page of a subscription's deliveries ended: its last delivery's creation time and
    id (deliveries are listed by both, newest first). Opaque to callers (`gateway.cursors`)."""

    created_at: float
    id: str


@attrs.frozen
class DeliveryPage:
    items: Sequence[Delivery]
    next_position: DeliveryPosition | None


@attrs.frozen
class Recovery:
    """A bulk recovery of a subscription's failed deliveries created in [`since`, `until`) (unix
    seconds): each is queued again once, in batches, by whichever process holds its lease."""

    id: str
    tenant: str
    subscription_id: str
    status: str  # running, done or failed
    since: float
    until: float
    requeued: int
    total: int | None  # counted by the first batch
    created_at: float
    finished_at: float | None
    reason: str | None  # why it failed


@attrs.frozen
class ClaimedDelivery:
    """A delivery leased to one worker, with what it needs to send it."""

    delivery: Delivery
    event: Event
    subscription: Subscription
    event_received: float  # unix seconds the event was committed


@attrs.frozen
class AttemptOutcome:
    """What one attempt came to, written back in a batch; `attempt` None hands an unsent lease
    back (status pending)."""

    delivery_id: str
    subscription_id: str
    attempt: Attempt | None
    status: str  # succeeded, failed (final) or pending (retry at next_attempt_at)
    next_attempt_at: float | None
    subscription_succeeded: bool
    # The subscriber asked that none of the subscription's deliveries go before this (unix
    # seconds): a 429 or 503 with Retry-After.
    hold_until: float | None = None


@attrs.frozen
class Purged:
    """What one purge round deleted, by table, and when the oldest event kept was received (unix
    seconds; None without events); `payloads`: events whose payload it blanked."""

    events: int
    deliveries: int
    attempts: int
    idempotency_keys: int
    oldest_event: float | None
    payloads: int = 0
    recoveries: int = 0  # finished bulk recoveries

    def by_table(self) -> dict[str, int]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "attempts": self.attempts,
            "idempotency_keys": self.idempotency_keys,
            "payloads": self.payloads,
            "recoveries": self.recoveries,
        }
