"""After a subscriber's outage: the operations listing a subscription's deliveries and recovering
its failed ones in bulk (`gateway.store.recovery`, `gateway.webhooks.recovery`)."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import cursors, payloads, problems, wire
from gateway.problems import FieldError
from gateway.state import EXCHANGE, RECOVERER, STORE
from gateway.store.records import Subscription
from gateway.webhooks.api import subscription_of
from gateway.webhooks.times import moment, ordered, time_bounds


async def list_subscription_deliveries(request: web.Request) -> web.Response:
    subscription = await subscription_of(request)
    query = request[EXCHANGE].input.query
    since, until = time_bounds(query)
    page = await request.app[STORE].list_subscription_deliveries(
        subscription.tenant,
        subscription.id,
        status=query.get("status"),
        since=since,
        until=until,
        after=cursors.DELIVERIES.decode(query.get("cursor")),
        limit=query.get("limit", 50),
    )
    items = [payloads.Delivery.of(d) for d in page.items]
    next_cursor = cursors.DELIVERIES.encode(page.next_position)
    return wire.json_response(payloads.DeliveryPage(items, next_cursor))


def _location(request: web.Request, subscription: Subscription, recovery_id: str) -> str:
    return str(
        request.app.router["getRecovery"].url_for(
            subscriptionId=subscription.id, recoveryId=recovery_id
        )
    )


async def recover_subscription(request: web.Request) -> web.Response:
    subscription = await subscription_of(request)
    given = wire.structure(request[EXCHANGE].input.body, payloads.RecoveryInput)
    now = time.time()
    since = moment(given.since, "/since", in_body=True)
    if given.until is None:
        if since >= now:
            raise problems.invalid_input(
                "since is not in the past", [FieldError("/since", "not in the past")]
            )
        until = now
    else:
        until = moment(given.until, "/until", in_body=True)
        ordered(since, until, ("/since", "/until"), in_body=True)
    # Within [1970, now]: deliveries were all queued after 1970 (and a time before year 1 has no
    # date-time to answer with), and a later `until` is now: what is queued from here on is not
    # in the range, so a recovery never takes up the deliveries it queued itself.
    since, until = min(max(since, 0.0), now), min(max(until, 0.0), now)
    if not subscription.enabled:
        raise problems.ProblemError(
            409,
            "subscription-disabled",
            "Conflict",
            f"subscription {subscription.id} is disabled: enable it (updateSubscription with"
            " enabled true) before recovering its deliveries, or they would fail again at once",
        )
    store = request.app[STORE]
    started = await store.start_recovery(
        subscription.tenant, subscription.id, since=since, until=until, now=now
    )
    if started is None:  # deleted meanwhile
        raise problems.not_found(f"subscription {subscription.id} does not exist")
    recovery, created = started
    # The same request again (`until` left out, or the same: as it was read when the running one
    # began) gets the one running; another range waits for it.
    same_until = given.until is None or recovery.until == min(
        max(moment(given.until, "/until", in_body=True), 0.0), recovery.created_at
    )
    if not created and (recovery.since != since or not same_until):
        raise problems.ProblemError(
            409,
            "recovery-running",
            "Conflict",
            f"recovery {recovery.id} of this subscription is running; start another once it"
            " has finished",
            extra={"recoveryId": recovery.id},
        )
    if created:
        request.app[RECOVERER].wake()
    location = _location(request, subscription, recovery.id)
    return wire.json_response(payloads.Recovery.of(recovery), 202, {"Location": location})


async def get_recovery(request: web.Request) -> web.Response:
    subscription = await subscription_of(request)
    recovery_id = request[EXCHANGE].input.path["recoveryId"]
    found = await request.app[STORE].get_recovery(subscription.tenant, subscription.id, recovery_id)
    if found is None:
        raise problems.not_found(f"recovery {recovery_id} does not exist")
    return wire.json_response(payloads.Recovery.of(found))
