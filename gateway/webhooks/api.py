"""The subscription and delivery operations of the contract; thin over the store."""

from __future__ import annotations

import datetime
import time
import uuid

from aiohttp import web

from gateway import cursors, payloads, problems, wire
from gateway.events import CORE_EVENT_TYPES, TEST_EVENT
from gateway.problems import FieldError
from gateway.state import EVENTS, EXCHANGE, PLUGINS, SETTINGS, STORE
from gateway.store.errors import PayloadPurged
from gateway.store.records import (
    UNSET,
    WILDCARD,
    EventFilter,
    Subscription,
    SubscriptionChanges,
    Unset,
)
from gateway.values import Event
from gateway.webhooks import filters, signing
from gateway.webhooks.targets import TargetNotAllowed
from gateway.webhooks.times import time_bounds


def _known_types(request: web.Request) -> set[str]:
    known = set(CORE_EVENT_TYPES)
    for declaration in request.app[PLUGINS].backends.values():
        known.update(declaration.event_types)
    return known


def _check_types(request: web.Request, types: list[str]) -> tuple[str, ...]:
    known = _known_types(request)
    unknown = [t for t in types if t != WILDCARD and t not in known]
    if unknown:
        raise problems.invalid_input(
            f"unknown event types: {', '.join(unknown)}",
            [FieldError(f"/eventTypes/{types.index(t)}", "unknown event type") for t in unknown],
            extra={"validNames": sorted(known | {WILDCARD})},
        )
    return tuple(types)


async def _check_url(request: web.Request, url: str) -> str:
    worker = request.app[EVENTS]
    try:
        checked = await worker.targets.check_now(url)
        worker.transports.check_url(checked)  # a sink's own rules (a subject, an exchange ...)
    except TargetNotAllowed as exc:
        raise problems.invalid_input(
            f"the subscription URL is not allowed: {exc}", [FieldError("/url", str(exc))]
        ) from None
    except ValueError as exc:
        raise problems.invalid_input(
            f"the subscription URL is not valid: {exc}", [FieldError("/url", str(exc))]
        ) from None
    return checked


def _check_filter(expression: str | None) -> str | None:
    """The subscription's filter, if it is one the gateway evaluates (else a 422 on /filter)."""
    if expression is None:
        return None
    try:
        filters.check(expression)
    except filters.FilterError as exc:
        at = "" if exc.position is None else f" at column {exc.position}"
        raise problems.invalid_input(
            f"the filter is not a valid expression{at}: {exc.message}",
            [FieldError("/filter", f"{exc.message}{at}")],
            extra=None if exc.position is None else {"position": exc.position},
        ) from None
    return expression


def _rate(given: float | Unset | None) -> float | Unset | None:
    """maxPerSecond as given (a JSON integer too), stored as a float."""
    return given if given is None or given is UNSET else float(given)


async def subscription_of(request: web.Request) -> Subscription:
    subscription_id = request[EXCHANGE].input.path["subscriptionId"]
    found = await request.app[STORE].get_subscription(request[EXCHANGE].tenant.id, subscription_id)
    if found is None:
        raise problems.not_found(f"subscription {subscription_id} does not exist")
    return found


async def create_subscription(request: web.Request) -> web.Response:
    given = wire.structure(request[EXCHANGE].input.body, payloads.SubscriptionInput)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    subscription = Subscription(
        id=f"sub_{uuid.uuid4().hex}",
        tenant=request[EXCHANGE].tenant.id,
        url=await _check_url(request, given.url),
        event_types=_check_types(request, given.event_types),
        filter=_check_filter(given.filter),
        description=given.description,
        enabled=True,
        disabled_reason=None,
        secret=signing.new_secret(),
        previous_secret=None,
        previous_expires_at=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
        max_per_second=given.max_per_second,
        order_by=given.order_by,
    )
    most = request.app[SETTINGS].events.max_subscriptions_per_tenant
    if not await request.app[STORE].create_subscription(subscription, limit=most):
        raise problems.invalid_input(
            f"the tenant has {most} subscriptions already, the most [events]"
            " max_subscriptions_per_tenant allows: delete one first",
            extra={"maxSubscriptions": most},
        )
    return wire.json_response(payloads.SubscriptionWithSecret.of(subscription), 201)


async def list_subscriptions(request: web.Request) -> web.Response:
    query = request[EXCHANGE].input.query
    page = await request.app[STORE].list_subscriptions(
        request[EXCHANGE].tenant.id,
        after=cursors.SUBSCRIPTIONS.decode(query.get("cursor")),
        limit=query.get("limit", 50),
    )
    items = [payloads.Subscription.of(s) for s in page.items]
    next_cursor = cursors.SUBSCRIPTIONS.encode(page.next_position)
    return wire.json_response(payloads.SubscriptionPage(items, next_cursor))


async def get_subscription(request: web.Request) -> web.Response:
    return wire.json_response(payloads.Subscription.of(await subscription_of(request)))


async def update_subscription(request: web.Request) -> web.Response:
    current = await subscription_of(request)
    body = request[EXCHANGE].input.body
    changes = SubscriptionChanges(
        url=await _check_url(request, body["url"]) if "url" in body else UNSET,
        event_types=_check_types(request, body["eventTypes"]) if "eventTypes" in body else UNSET,
        description=body.get("description", UNSET),
        filter=_check_filter(body["filter"]) if "filter" in body else UNSET,
        enabled=body.get("enabled", UNSET),
        max_per_second=_rate(body.get("maxPerSecond", UNSET)),
        order_by=body.get("orderBy", UNSET),
    )
    updated = await request.app[STORE].update_subscription(current.tenant, current.id, changes)
    if updated is None:
        raise problems.not_found(f"subscription {current.id} does not exist")
    return wire.json_response(payloads.Subscription.of(updated))


async def delete_subscription(request: web.Request) -> web.Response:
    current = await subscription_of(request)
    await request.app[STORE].delete_subscription(current.tenant, current.id)
    return web.Response(status=204)


async def rotate_subscription_secret(request: web.Request) -> web.Response:
    current = await subscription_of(request)
    given = wire.structure(request[EXCHANGE].input.body or {}, payloads.SecretRotationInput)
    default = request.app[SETTINGS].events.rotation_grace
    expires = time.time() + (default if given.grace_seconds is None else given.grace_seconds)
    changes = SubscriptionChanges(
        secret=signing.new_secret(), previous_secret=current.secret, previous_expires_at=expires
    )
    updated = await request.app[STORE].update_subscription(current.tenant, current.id, changes)
    assert updated is not None
    rotation = payloads.SecretRotation(updated.secret, payloads.iso_seconds(expires))
    return wire.json_response(rotation)


async def send_test_event(request: web.Request) -> web.Response:
    current = await subscription_of(request)
    event = Event.new(
        TEST_EVENT,
        wire.unstructure(payloads.TestEventData(current.id, "a test event, sent on request")),
        tenant=current.tenant,
        backend=None,
    )
    store = request.app[STORE]
    await store.record_event(event, dedupe_window=0, only_subscription=current.id)
    request.app[EVENTS].wake()
    return wire.json_response(payloads.Event.of(event), 202)


async def _event(request: web.Request) -> Event:
    event_id = request[EXCHANGE].input.path["eventId"]
    event = await request.app[STORE].get_event(request[EXCHANGE].tenant.id, event_id)
    if event is None:
        raise problems.not_found(f"event {event_id} does not exist")
    return event


async def list_events(request: web.Request) -> web.Response:
    query = request[EXCHANGE].input.query
    since, until = time_bounds(query)
    page = await request.app[STORE].list_events(
        request[EXCHANGE].tenant.id,
        event_type=query.get("type"),
        after=cursors.EVENTS.decode(query.get("cursor")),
        limit=query.get("limit", 50),
        where=EventFilter(
            since=since, until=until, product_id=query.get("productId"), user_id=query.get("userId")
        ),
    )
    items = [payloads.Event.of(e) for e in page.items]
    next_cursor = cursors.EVENTS.encode(page.next_position)
    return wire.json_response(payloads.EventPage(items, next_cursor))


async def get_event(request: web.Request) -> web.Response:
    return wire.json_response(payloads.Event.of(await _event(request)))


async def list_event_deliveries(request: web.Request) -> web.Response:
    # The deliveries first: an event's go with it (retention deletes both in one transaction),
    # so only an empty list needs the event looked up (404 or none queued): one read, not two.
    event_id = request[EXCHANGE].input.path["eventId"]
    deliveries = await request.app[STORE].list_deliveries(request[EXCHANGE].tenant.id, event_id)
    if not deliveries:
        await _event(request)
    return wire.json_response(payloads.DeliveryList([payloads.Delivery.of(d) for d in deliveries]))


def _payload_purged(event_id: str) -> problems.ProblemError:
    detail = f"the payload of event {event_id} was purged by the store's retention"
    return problems.ProblemError(409, "payload-purged", "Conflict", detail)


async def redeliver_event(request: web.Request) -> web.Response:
    event = await _event(request)
    if event.payload_purged:
        raise _payload_purged(event.id)
    subscription_id = wire.structure(
        request[EXCHANGE].input.body or {}, payloads.RedeliveryInput
    ).subscription_id
    store = request.app[STORE]
    if subscription_id is not None:
        target = await store.get_subscription(event.tenant, subscription_id)
        if target is None:
            raise problems.not_found(f"subscription {subscription_id} does not exist")
        if not target.enabled:
            raise problems.ProblemError(
                409, "subscription-disabled", "Conflict", f"subscription {target.id} is disabled"
            )
    try:
        deliveries = await store.redeliver(event.tenant, event.id, subscription_id)
    except PayloadPurged:  # by a purge round since it was read above
        raise _payload_purged(event.id) from None
    request.app[EVENTS].wake()
    queued = payloads.RedeliveryResult([payloads.Delivery.of(d) for d in deliveries])
    return wire.json_response(queued, 202)
