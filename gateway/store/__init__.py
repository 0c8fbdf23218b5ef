"""The store: what the gateway must remember across restarts, behind one narrow interface.

SQLite is the embedded default; PostgreSQL serves several gateway processes or replicas on one
database. Both run the same logic (`logic`, `steps`) over a dialect of their own (`sql.Db`), and
pass the same contract tests (`tests/test_store.py`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

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


RECOVERY_STATUSES = ("running", "done", "failed")


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


class PayloadPurged(Exception):
    """The event's payload is gone (the store's retention purged it): it cannot be delivered."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"the payload of event {event_id} was purged by the store's retention")
        self.event_id = event_id


class StoreUnavailable(Exception):
    """The store cannot be reached (its server is down, the connection was lost). The operation
    was not acknowledged: the caller is answered 503 with Retry-After and may retry."""


class FilterCheck(Protocol):
    """Evaluates subscriptions' filters (`gateway.webhooks.filters.Filters`)."""

    def matches(self, subscription_id: str, expression: str, doc: Any) -> bool:
        """Whether the subscription's filter keeps the event `doc` (as subscribers get it)."""


class Store(Protocol):
    # Asked when an event's deliveries are recorded, for each subscription with a filter.
    filters: FilterCheck
    # Writes run one at a time in the order they were asked for (SQLite's one writer): a claim
    # asked for after an event's write (even before it committed) sees the deliveries it queued.
    writes_in_order: bool

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer."""

    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any process using this store queues deliveries (new events,
        redeliveries, leases handed back). A store only one process can use may do nothing: that
        process wakes its own workers."""

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None: ...

    async def claim_resource(
        self, kind: str, resource_id: str, *, tenant: str, backend: str, parent_id: str | None
    ) -> ResourceRecord:
        """Record the owner unless the resource has one; returns the record as it is now."""

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
        """Create the record with `attributes` if the id is free, else merge them into it (top-level
        keys replaced) if `tenant` owns it, in one transaction. Returns the record as it is now
        (another tenant's unchanged) and whether this call created it."""

    async def release_resource(self, kind: str, resource_id: str, *, tenant: str) -> bool:
        """Forget the tenant's claim on an id that nothing was recorded on yet (attributes still
        empty): the backend refused the create, so the id is free again. Returns whether it was
        forgotten; a record a backend wrote to stays."""

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        """Merge `attributes` into the record's (top-level keys replaced); None if it is unknown."""

    async def list_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> Sequence[ResourceRecord]:
        """The tenant's resources of `kind` under any of `parent_ids`, oldest first: one read
        for a product's configurations and for the images of all of them alike."""

    def known_resources(
        self, tenant: str, kind: str, parent_ids: Sequence[str]
    ) -> list[ResourceRecord] | None:
        """What `list_resources` would answer, when the store remembers it without a read (a
        store one process writes); None when only `list_resources` can tell."""

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        """Claim the key for `lease` seconds (None), or return the live record that holds it."""

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
        """Store the answer of the request that claimed the key, kept for `ttl` seconds."""

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        """Release a claimed key whose request failed in a way the caller may retry."""

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None: ...

    async def record_event(
        self, event: Event, *, dedupe_window: float, only_subscription: str | None = None
    ) -> bool:
        """Store an event and its deliveries in one transaction; False for a duplicate.

        A duplicate is an event with the same (tenant, dedupe_key) stored within `dedupe_window`
        seconds. Deliveries go to every enabled subscription of the tenant whose filter matches,
        or to `only_subscription` alone (enabled or not: a test event).
        """

    async def create_subscription(
        self, subscription: Subscription, *, limit: int | None = None
    ) -> bool:
        """Store it, unless its tenant has `limit` subscriptions already (False): checked and
        stored in one step, so concurrent creates cannot pass the limit together."""

    async def get_subscription(self, tenant: str, subscription_id: str) -> Subscription | None: ...

    async def list_subscriptions(
        self, tenant: str, *, after: Position | None, limit: int
    ) -> SubscriptionPage:
        """The tenant's subscriptions, oldest first, from after `after` (None: the first page)."""

    async def update_subscription(
        self, tenant: str, subscription_id: str, changes: SubscriptionChanges
    ) -> Subscription | None:
        """Apply `changes` (enabling clears the failure state); None if it is unknown."""

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Delete it and fail its undelivered deliveries; `purge` removes them and their
        attempts later (`retention.DELETED_GRACE`), in batches."""

    async def disable_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        """Disable it (its pending deliveries fail); None if already disabled or gone."""

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
        """Lease up to `limit` due deliveries to `owner`: pending ones whose time has come (by
        `now`; by default, the moment the claim runs), and ones whose lease ended (their worker
        died), skipping subscriptions in `exclude`.

        Tenants take turns: each tenant's oldest due delivery first, then each one's second, and
        so on, and a tenant gets at most `per_tenant` less what `owner` has in flight for it
        already (`busy`, by tenant), so that one tenant's backlog never takes every slot."""

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        """Record attempts and move their deliveries on, in one transaction."""

    async def list_deliveries(self, tenant: str, event_id: str) -> Sequence[Delivery]: ...

    async def redeliver(
        self, tenant: str, event_id: str, subscription_id: str | None
    ) -> Sequence[Delivery]:
        """Queue fresh deliveries of a stored event (to enabled matching subscriptions); raises
        `PayloadPurged` for one whose payload the retention purged."""

    async def queue_depth(self) -> int:
        """Deliveries not yet final."""

    async def save_trace_context(self, subject: str, context: str, *, now: float) -> None:
        """Keep `context` (`gateway.telemetry`'s text) for `subject`, replacing any before."""

    async def trace_contexts(self, subjects: Sequence[str]) -> dict[str, str]:
        """The contexts kept for those of `subjects` that have one."""

    async def get_event(self, tenant: str, event_id: str) -> Event | None: ...

    async def purge(
        self,
        *,
        now: float,
        keep_events: float | None,
        batch: int,
        keep_payloads: float | None = None,
    ) -> Purged | None:
        """One retention round as of `now` (`gateway.store.retention`), `batch` rows to a
        transaction; None when another process's round holds the purge (PostgreSQL). Payloads
        older than `keep_payloads` are blanked (None: they go with their events)."""

    async def list_events(
        self,
        tenant: str,
        *,
        event_type: str | None,
        after: Position | None,
        limit: int,
        where: EventFilter | None = None,
    ) -> EventPage:
        """The tenant's events (of `event_type` only, when given; as `where` filters them),
        newest first, from after `after` (None: the first page)."""

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
        """The subscription's deliveries (of `status` only, when given) created in [`since`,
        `until`), newest first, each with its attempts, from after `after`; empty for another
        tenant's subscription."""

    async def start_recovery(
        self, tenant: str, subscription_id: str, *, since: float, until: float, now: float
    ) -> tuple[Recovery, bool] | None:
        """A new running recovery of the subscription's failed deliveries in [`since`, `until`),
        or the one already running for it (then False); None if the subscription is not the
        tenant's."""

    async def get_recovery(
        self, tenant: str, subscription_id: str, recovery_id: str
    ) -> Recovery | None: ...

    async def claim_recovery(self, *, owner: str, now: float, lease: float) -> Recovery | None:
        """Lease a running recovery no live process holds (oldest first) to `owner`."""

    async def recover_step(
        self, recovery_id: str, *, owner: str, now: float, lease: float, batch: int
    ) -> Recovery | None:
        """Queue again the next `batch` failed deliveries of a recovery `owner` holds, in one
        transaction, and renew its lease; the recovery as it is now (done once none is left), or
        None when `owner` no longer holds it."""

    async def release_recovery(self, recovery_id: str, *, owner: str) -> None:
        """Give up the lease (a process stopping): another process, or this one restarted,
        continues at once."""
