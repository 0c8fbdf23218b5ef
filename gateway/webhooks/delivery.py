"""Durable, signed delivery of events to subscribers.

Every event is committed with one delivery row per matching subscription before anyone is told it
was received. Workers lease due deliveries from the store (so a process killed at any moment loses
nothing: its leases run out and another worker, or the restarted process, sends them again), send
them signed with Standard Webhooks headers (over HTTP, or to a message broker through an installed
sink: `gateway.webhooks.transports`), and write the outcomes back in batches
(`gateway.webhooks.outcomes`). Concurrency is bounded per process, per tenant and per
subscription, so one slow or dead subscriber, or one tenant's, never holds up the others; where a
delivery may go is checked at every attempt (`gateway.webhooks.targets`).

Delivery is at least once: a subscriber may see an event twice (after a crash, or a redelivery)
and de-duplicates by `webhook-id`, which is the event id on every attempt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from gateway import payloads, wire
from gateway.logs import SECRETS, get_logger
from gateway.redaction import redact_url, shown_url
from gateway.settings import EventsSettings
from gateway.sink import SendOutcome
from gateway.store.protocol import Store
from gateway.store.records import Attempt, AttemptOutcome, ClaimedDelivery, Subscription
from gateway.values import Event
from gateway.webhooks import signing
from gateway.webhooks.metrics import DISABLED, FAILED, RETRYING, SUCCEEDED, WebhookMetrics
from gateway.webhooks.outcomes import OutcomeRecorder
from gateway.webhooks.targets import TargetNotAllowed, TargetPolicy
from gateway.webhooks.transports import Transports

log = get_logger("gateway.webhooks")

# A subscriber answering these with Retry-After holds its whole subscription, not one delivery.
HOLDING_STATUSES = frozenset({429, 503})

Send = Callable[[ClaimedDelivery, bytes, dict[str, str]], Awaitable[SendOutcome]]


class DeliveryAttemptTracer(Protocol):
    """Runs an attempt's `send` in a span of its own (`gateway.telemetry.clients`)."""

    async def attempt(
        self, item: ClaimedDelivery, number: int, body: bytes, headers: dict[str, str], send: Send
    ) -> SendOutcome: ...


DisabledCallback = Callable[[Subscription, str], Awaitable[None]]


def event_payload(event: Event) -> bytes:
    """The exact bytes subscribers receive (and that are signed): the same event, the same bytes,
    as the converter writes fields in their declared order and `data` in its own."""
    return wire.dumps(payloads.Event.of(event))


class DeliveryWorker:
    """The delivery loop of one process: claims, sends, records, and wakes on new events."""

    def __init__(
        self,
        *,
        store: Store,
        settings: EventsSettings,
        metrics: WebhookMetrics,
        on_disabled: DisabledCallback,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        """`resolver` looks names up (the system's by default); `[events] allowed_targets` is
        enforced on what it answers, at every connection."""
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.on_disabled = on_disabled
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._in_flight: collections.Counter[str] = collections.Counter()  # by subscription
        self._tenants: collections.Counter[str] = collections.Counter()  # in flight, by tenant
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._depth: asyncio.Task[None] | None = None  # the queue depth's count, when under way
        self._starved = False  # the last claim left something for want of room
        self._rng = random.Random()
        self.outcomes = OutcomeRecorder(store, on_frees=self.wake)
        self.targets = TargetPolicy(settings.allowed_targets, resolver)
        self.transports = Transports(settings, self.targets)
        # A span per attempt when the app traces ([telemetry]): gateway.telemetry.clients.
        self.tracer: DeliveryAttemptTracer | None = None

    def wake(self) -> None:
        """New deliveries were committed: look now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self.transports.http.start()
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="webhooks-claim"),
            asyncio.create_task(self.outcomes.run(), name="webhooks-record"),
        ]
        # Deliveries queued by other processes on the same database wake this one too.
        self.store.listen(self.wake)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let attempts under way finish briefly, record what finished."""
        self._loops[0].cancel()
        if self._depth is not None:
            self._depth.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._loops[1].cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.outcomes.flush()  # unfinished ones keep their lease and go out again after it
        await self.transports.close()
        await self.targets.close()

    # -- claiming -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        last_depth = 0.0
        failing = False
        while True:
            # Cleared before claiming, not after: a wake that comes while the claim's query runs
            # (an event committed too late for it to see) is kept and looked at right away.
            self._wake.clear()
            try:
                more = await self._claim()
                now = time.monotonic()
                if now - last_depth > 1.0 and (self._depth is None or self._depth.done()):
                    # Beside the claims, not between them: the count takes milliseconds.
                    self._depth = asyncio.create_task(self._measure_depth())
                    last_depth = now
            except Exception as exc:  # the store is down: keep trying, never stop delivering
                if not failing:
                    log.warning("webhook.claim_failed", error=str(exc) or type(exc).__name__)
                failing, more = True, False
            else:
                if failing:
                    log.info("webhook.claim_recovered")
                failing = False
            if more:
                continue
            try:
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _measure_depth(self) -> None:
        with contextlib.suppress(Exception):  # the store is down: the claims say so
            self.metrics.queue_depth.set(await self.store.queue_depth())

    async def _claim(self) -> bool:
        """Lease what is due, up to the room there is, and start sending it; True when the claim
        was full (more may be due: claim again at once). Otherwise everything due when it ran
        was taken, and what comes due later wakes the loop (`wake`, `_done`, a flush) or the
        poll finds it (a retry's time, a lease that ended)."""
        free = self.settings.concurrency - len(self._tasks)
        if free <= 0:
            self._starved = True
            return False
        limit = self.settings.per_subscription
        per_tenant = self.settings.per_tenant()
        # In flight as the store is told (attempts may end while it claims), plus what it gave.
        tenants = collections.Counter(self._tenants)
        in_flight = collections.Counter(self._in_flight)
        busy = [sid for sid, n in in_flight.items() if n >= limit]
        claimed = await self.store.claim_deliveries(
            owner=self.owner,
            lease=self.settings.lease,
            limit=free,
            exclude=busy,
            per_tenant=per_tenant,
            busy=dict(tenants),
        )
        started = 0
        for item in claimed:
            subscription, tenant = item.subscription.id, item.delivery.tenant
            if self._in_flight[subscription] >= limit or self._tenants[tenant] >= per_tenant:
                # Over this subscription's or tenant's share: hand it back; it goes out when
                # this worker or another has room.
                self._release_later(item)
                continue
            self._in_flight[subscription] += 1
            self._tenants[tenant] += 1
            tenants[tenant] += 1
            in_flight[subscription] += 1
            task = asyncio.create_task(self._deliver(item))
            self._tasks.add(task)
            task.add_done_callback(self._done)
            started += 1
        # An attempt that ends makes room worth a claim only if this one may have left something
        # for want of it: a delivery handed back, or a subscription or a tenant at its share (the
        # store gave the tenant no more than its room) by the counts the store was given.
        self._starved = (
            len(claimed) > started
            or any(n >= limit for n in in_flight.values())
            or any(n >= per_tenant for n in tenants.values())
        )
        return len(claimed) >= free

    def _release_later(self, item: ClaimedDelivery) -> None:
        outcome = AttemptOutcome(
            delivery_id=item.delivery.id,
            subscription_id=item.subscription.id,
            attempt=None,
            status="pending",
            next_attempt_at=time.time(),
            subscription_succeeded=item.subscription.failing_since is None,
        )
        self.outcomes.record(outcome, frees=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._starved:
            self._wake.set()  # room for what the last claim left
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook.worker_error", error=repr(task.exception()))

    # -- sending --------------------------------------------------------------------------------

    async def _deliver(self, item: ClaimedDelivery) -> None:
        try:
            await self._attempt(item)
        finally:
            for counter, key in (
                (self._in_flight, item.subscription.id),
                (self._tenants, item.delivery.tenant),
            ):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    async def _attempt(self, item: ClaimedDelivery) -> None:
        delivery, event, subscription = item.delivery, item.event, item.subscription
        number = delivery.attempts + 1
        body = event_payload(event)
        now = time.time()
        headers = signing.headers(subscription.signing_secrets(now), event.id, int(now), body)
        headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        if self.tracer is None:
            sent = await self._send(item, body, headers)
        else:
            sent = await self.tracer.attempt(item, number, body, headers, self._send)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        ok, status = sent.ok, sent.status
        # A broker's error may quote its URL: its credentials are secrets.
        error = None if sent.error is None else SECRETS.scrub(sent.error)
        attempt = Attempt(number, _iso(now), status, duration_ms, error, sent.excerpt)
        outcome, next_at = self._next(number, status, sent.retry_after, ok)
        hold_until = None
        if status in HOLDING_STATUSES and sent.retry_after is not None:
            hold_until = time.time() + min(sent.retry_after, self.settings.retry_after_cap)
        self.outcomes.record(
            AttemptOutcome(
                delivery_id=delivery.id,
                subscription_id=subscription.id,
                attempt=attempt,
                status=outcome,
                next_attempt_at=next_at,
                subscription_succeeded=ok,
                hold_until=hold_until,
            ),
            # The end of its key's head: the key's next delivery may go.
            frees=subscription.order_by is not None and outcome != "pending",
        )
        label = SUCCEEDED if ok else (RETRYING if outcome == "pending" else FAILED)
        if ok:
            self.metrics.latency.observe(max(0.0, time.time() - item.event_received))
        disable_reason = self._disable_reason(subscription, status, ok, error, now)
        if disable_reason:
            label = DISABLED
        self.metrics.attempts.labels(label).inc()
        log.log(
            20 if ok else 30,
            "webhook.attempt",
            tenant=event.tenant,
            subscription=subscription.id,
            delivery=delivery.id,
            event_id=event.id,
            event_type=event.type,
            url=redact_url(shown_url(subscription.url)),
            attempt=number,
            status=status,
            duration_ms=duration_ms,
            outcome=label,
            **({"error": error} if error else {}),
        )
        if disable_reason:
            disabled = await self.store.disable_subscription(subscription.id, disable_reason)
            if disabled is not None:
                await self.on_disabled(disabled, disable_reason)

    async def _send(
        self, item: ClaimedDelivery, body: bytes, headers: dict[str, str]
    ) -> SendOutcome:
        """Send the signed event by the transport of its URL's scheme; never raises."""
        url = item.subscription.url
        try:
            self.targets.check(url)  # the list may have been narrowed since
            return await self.transports.send(url, body, headers)
        except TimeoutError:
            return SendOutcome.failed(f"timed out after {self.settings.attempt_timeout} s")
        except TargetNotAllowed as exc:  # by the URL's host, or by what its name resolved to
            return SendOutcome.failed(f"refused by [events] allowed_targets: {exc}"[:300])
        except Exception as exc:
            # Whatever else went wrong still ends as a recorded attempt: an exception leaving
            # here would leave the delivery leased, unrecorded, and resent every lease forever.
            log.exception(
                "webhook.attempt_error", delivery=item.delivery.id, event_id=item.event.id
            )
            return SendOutcome.failed(f"{type(exc).__name__}: {exc}"[:300])

    def _next(
        self, number: int, status: int | None, retry_after: float | None, ok: bool
    ) -> tuple[str, float | None]:
        if ok:
            return "succeeded", None
        schedule = self.settings.retry_schedule
        if status == 410 or number >= len(schedule):
            return "failed", None
        jitter = self.settings.jitter
        delay = schedule[number] * self._rng.uniform(1 - jitter, 1 + jitter)
        if retry_after is not None:  # asked for by a 429, 502, 503 or 504, or by a sink
            delay = max(delay, min(retry_after, self.settings.retry_after_cap))
        return "pending", time.time() + delay

    def _disable_reason(
        self,
        subscription: Subscription,
        status: int | None,
        ok: bool,
        error: str | None,
        now: float,
    ) -> str | None:
        if status == 410:
            return "the endpoint answered 410 Gone"
        failing_since = subscription.failing_since
        if ok or failing_since is None or now - failing_since < self.settings.disable_after:
            return None
        days = self.settings.disable_after / 86400
        return f"every delivery failed for {days:g} days (last: {error})"


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="milliseconds")
