"""Subscriptions through the generated client: a test delivery reaches a local receiver and
verifies with the standardwebhooks library; a filter, throttling and ordering are set, shown and
removed; failed deliveries are listed and recovered."""

from __future__ import annotations

import datetime
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.generated_client.conftest import Generated, until


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[TestServer, list[tuple[bytes, dict[str, str]]]]:
    """A subscriber endpoint recording each delivery's raw body and headers."""
    got: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    server: TestServer = await aiohttp_server(app)
    return server, got


async def test_subscription_test_event_is_delivered_and_verifies(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """Create a subscription, send a test event, receive it signed, verify it, see it succeed."""
    g = Generated(client_package)
    server, got = receiver
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")), event_types=["gateway.test"], description="e2e"
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.secret.startswith("whsec_")

    sent = await g.op("subscriptions", "send_test_event").asyncio_detailed(
        subscription.id, client=api
    )
    assert sent.status_code == 202
    event = sent.parsed

    async def received() -> bool:
        return bool(got)

    await until(received)
    raw, headers = got[0]
    payload = Webhook(subscription.secret).verify(raw, headers)
    assert payload["id"] == event.id == headers["webhook-id"]
    assert payload["type"] == "gateway.test"
    assert payload["data"]["subscriptionId"] == subscription.id
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription.secret).verify(raw + b" ", headers)

    async def succeeded() -> Any:
        deliveries = await g.op("events", "list_event_deliveries").asyncio(event.id, client=api)
        return [d for d in deliveries.items if d.status == g.models.DeliveryStatus.SUCCEEDED]

    [delivery] = await until(succeeded)
    assert delivery.subscription_id == subscription.id
    assert delivery.attempts[0].status == 204


async def test_filtered_subscription_through_the_generated_client(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """A subscription created with a filter shows it; its test event arrives whatever the
    filter; a bad filter is a 422 on /filter; null removes the filter."""
    g = Generated(client_package)
    server, got = receiver
    expression = "data.productType == 'GARMENT_2D'"
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")), event_types=["*"], filter_=expression
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.filter_ == expression
    shown = await g.op("subscriptions", "get_subscription").asyncio(subscription.id, client=api)
    assert shown.filter_ == expression
    await g.op("subscriptions", "send_test_event").asyncio_detailed(subscription.id, client=api)

    async def received() -> bool:
        return bool(got)

    await until(received)
    update = g.op("subscriptions", "update_subscription")
    bad = await update.asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(filter_="data.sku ==")
    )
    assert bad.status_code == 422
    assert bad.parsed.errors[0].location == "/filter"
    removed = await update.asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(filter_=None)
    )
    assert removed.status_code == 200
    assert removed.parsed.filter_ is None


async def test_a_subscription_is_throttled_and_ordered_through_the_generated_client(
    client_package: ModuleType,
    api: Any,
    receiver: tuple[TestServer, list[tuple[bytes, dict[str, str]]]],
) -> None:
    """maxPerSecond and orderBy through the generated models: set on create, shown (with
    throttledUntil null: no subscriber asked to slow down), kept by a patch without them,
    removed by null."""
    g = Generated(client_package)
    server, _ = receiver
    body = g.models.SubscriptionInput(
        url=str(server.make_url("/hooks")),
        event_types=["*"],
        max_per_second=2.5,
        order_by=g.models.DeliveryOrder.RESOURCE,
    )
    created = await g.op("subscriptions", "create_subscription").asyncio_detailed(
        client=api, body=body
    )
    assert created.status_code == 201
    subscription = created.parsed
    assert subscription.max_per_second == 2.5
    assert subscription.throttled_until is None
    assert subscription.order_by == "resource"
    update = g.op("subscriptions", "update_subscription")
    kept = await update.asyncio(
        subscription.id, client=api, body=g.models.SubscriptionPatch(description="slow")
    )
    assert kept.max_per_second == 2.5
    assert kept.order_by == "resource"
    removed = await update.asyncio(
        subscription.id,
        client=api,
        body=g.models.SubscriptionPatch(max_per_second=None, order_by=None),
    )
    assert removed.max_per_second is None
    assert removed.order_by is None
    assert removed.description == "slow"


@pytest.fixture
async def gone_then_back(aiohttp_server: Any) -> tuple[TestServer, list[int]]:
    """A subscriber that answers 410 Gone to its first delivery (the gateway gives up and
    disables the subscription), then 204: the statuses it answered, in order."""
    answered: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        answered.append(410 if not answered else 204)
        return web.Response(status=answered[-1])

    app = web.Application()
    app.router.add_post("/hooks", handle)
    server: TestServer = await aiohttp_server(app)
    return server, answered


async def test_failed_deliveries_are_listed_and_recovered_through_the_generated_client(
    client_package: ModuleType, api: Any, gone_then_back: tuple[TestServer, list[int]]
) -> None:
    """A subscriber gone (410) during a test event: its failed delivery is listed by status and
    time, a recovery of the disabled subscription is refused (409), and once it is enabled again
    the recovery queues the delivery again, shows its progress to done, and the event arrives."""
    g = Generated(client_package)
    server, answered = gone_then_back
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    body = g.models.SubscriptionInput(url=str(server.make_url("/hooks")), event_types=["*"])
    subscription = (
        await g.op("subscriptions", "create_subscription").asyncio_detailed(client=api, body=body)
    ).parsed
    await g.op("subscriptions", "send_test_event").asyncio_detailed(subscription.id, client=api)

    async def failed() -> Any:
        page = await g.op("subscriptions", "list_subscription_deliveries").asyncio(
            subscription.id, client=api, status=g.models.DeliveryStatus.FAILED, since=since
        )
        return page.items

    [delivery] = await until(failed)
    assert delivery.attempts[0].status == 410
    recover = g.op("subscriptions", "recover_subscription")
    refused = await recover.asyncio_detailed(
        subscription.id, client=api, body=g.models.RecoveryInput(since=since)
    )
    assert refused.status_code == 409
    await g.op("subscriptions", "update_subscription").asyncio_detailed(
        subscription.id, client=api, body=g.models.SubscriptionPatch(enabled=True)
    )
    started = await recover.asyncio_detailed(
        subscription.id, client=api, body=g.models.RecoveryInput(since=since)
    )
    assert started.status_code == 202
    recovery = started.parsed

    async def done() -> Any:
        now = await g.op("subscriptions", "get_recovery").asyncio(
            subscription.id, recovery.id, client=api
        )
        return now if now.status == g.models.RecoveryStatus.DONE else None

    finished = await until(done)
    assert (finished.requeued, finished.total) == (1, 1)

    async def delivered() -> bool:
        return answered == [410, 204]

    await until(delivered)
    [again] = await failed()
    assert again.requeued_as
