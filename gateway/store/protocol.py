"""The store's interface (`Store`): what the gateway must remember across restarts, behind one
narrow protocol that both stores implement (`gateway.store.opening` picks one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gateway.store.records import (
    AttemptOutcome,
    ClaimedDelivery,
    Delivery,
    DeliveryPage,
    DeliveryPosition,
    EventFilter,
    EventPage,
    IdempotentRecord,
    Position,
    Purged,
    Recovery,
    ResourceRecord,
    Subscription,
    SubscriptionChanges,
    SubscriptionPage,
)
from gateway.values import Event


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
