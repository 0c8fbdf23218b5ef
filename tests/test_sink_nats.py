"""Events delivered to NATS JetStream through the nats sink plugin, end to end: a callback to the
real app, the event recorded, published with acknowledgement to a real `nats-server -js`, read back
by a consumer that verifies the signature as a webhook subscriber does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import nats
import orjson
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig
from standardwebhooks.webhooks import Webhook

from gateway.state import STORE
from gateway.testing import GatewayLogs
from tests import conftest
from tests.brokers import NatsServer, nats_server  # noqa: F401 - the session's NATS server
from tests.conftest import Gateway, MakeGateway
from tests.subscribers import (
    Receiver,
    callback,
    make_events_gateway,
    receiver,  # noqa: F401 - a webhook subscriber, the fixture
    subscribe,
)

QUICK_RETRIES = [0, *[0.3] * 60]
T = TypeVar("T")


async def until(condition: Callable[[], Awaitable[T]], within: float = 10.0) -> T:
    """The first truthy answer of an asynchronous `condition`, failing after `within` s."""
    async with asyncio.timeout(within):
        while not (found := await condition()):  # noqa: ASYNC110 - polling a broker and a store
            await asyncio.sleep(0.02)
    return found


@pytest.fixture
async def jetstream(nats_server: NatsServer) -> AsyncIterator[Client]:  # noqa: F811
    """A client of the session's server, its password among the secrets no log line may show;
    the streams a test made are deleted after it."""
    conftest.SECRETS.append(nats_server.password)
    client = await nats.connect(nats_server.client_url, max_reconnect_attempts=-1, error_cb=_quiet)
    yield client
    js = client.jetstream()
    for name in await js.streams_info():
        await js.delete_stream(name.config.name or "")
    await client.close()


async def _quiet(_: Exception) -> None:
    """The broker restarts on purpose in one test: its connection errors are expected."""


async def make_stream(client: Client, name: str, subject: str) -> None:
    await client.jetstream().add_stream(StreamConfig(name=name, subjects=[subject]))


async def stored(client: Client, stream: str) -> list[Any]:
    """Every message the stream holds, in order."""
    js = client.jetstream()
    info = await js.stream_info(stream)
    return [await js.get_msg(stream, seq) for seq in range(1, info.state.last_seq + 1)]


async def stream_count(client: Client, stream: str) -> int:
    return (await client.jetstream().stream_info(stream)).state.messages


async def test_events_reach_jetstream_signed_on_each_store(
    make_gateway: MakeGateway,
    store_url: str,
    nats_server: NatsServer,  # noqa: F811
    jetstream: Client,
    logs: GatewayLogs,
) -> None:
    """A callback's event is published to the subscription's subject with the Standard Webhooks
    headers (verified with the reference library) and `Nats-Msg-Id` = `webhook-id` = the event
    id; the attempt is recorded as succeeded; the broker's password shows nowhere: not in the
    subscription's answers, nor in any log line."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url)
    await make_stream(jetstream, "ORDERS", "gateway.orders")
    created = await subscribe(gateway, nats_server.url("gateway.orders"), ["*"])
    assert created["url"] == nats_server.url("gateway.orders", credentials=False)
    await callback(gateway, "nats/1")
    await until(lambda: stream_count(jetstream, "ORDERS"))
    [message] = await stored(jetstream, "ORDERS")
    headers = message.headers
    assert Webhook(created["secret"]).verify(message.data, headers)["type"]
    assert headers["Nats-Msg-Id"] == headers["webhook-id"]
    event_id = headers["webhook-id"]
    store = gateway.client.app[STORE]

    async def succeeded() -> bool:
        deliveries = await store.list_deliveries("tenant-a", event_id)
        return [d.status for d in deliveries] == ["succeeded"]

    await until(succeeded)
    listed = await gateway.client.get(f"/v1/subscriptions/{created['id']}", headers=gateway.auth())
    assert nats_server.password not in await listed.text()
    attempts = [line for line in logs.all() if line.get("event") == "webhook.attempt"]
    assert attempts
    assert attempts[-1]["url"] == nats_server.url("gateway.orders", credentials=False)
    assert nats_server.password not in logs.text()


async def test_a_subject_no_stream_captures_fails_and_is_retried(
    make_gateway: MakeGateway,
    nats_server: NatsServer,  # noqa: F811
    jetstream: Client,
) -> None:
    """Published where no stream listens, nothing is stored: the attempt is recorded as failed
    with the reason, and retried until a stream captures the subject."""
    gateway = await make_events_gateway(make_gateway, retry_schedule=QUICK_RETRIES)
    await subscribe(gateway, nats_server.url("gateway.late"), ["*"])
    await callback(gateway, "nats/late")
    store = gateway.client.app[STORE]

    async def first_failure() -> str | None:
        page = await store.list_events("tenant-a", event_type=None, after=None, limit=5)
        for event in page.items:
            for delivery in await store.list_deliveries("tenant-a", event.id):
                if delivery.last_error:
                    return delivery.last_error
        return None

    error = await until(first_failure)
    assert error == "no JetStream stream captures the subject 'gateway.late'"
    await make_stream(jetstream, "LATE", "gateway.late")
    await until(lambda: stream_count(jetstream, "LATE"))


async def test_nothing_is_lost_when_the_broker_restarts_mid_burst(
    make_gateway: MakeGateway,
    store_url: str,
    nats_server: NatsServer,  # noqa: F811
    jetstream: Client,
    logs: GatewayLogs,
) -> None:
    """200 events; the broker is stopped once about 50 are stored and started again a moment
    later: attempts fail meanwhile (recorded, retried), and all 200 arrive, each stored once (the
    stream de-duplicates a resend by Nats-Msg-Id)."""
    gateway = await make_events_gateway(
        make_gateway, store_url=store_url, retry_schedule=QUICK_RETRIES, attempt_timeout=1
    )
    await make_stream(jetstream, "BURST", "gateway.burst")
    await subscribe(gateway, nats_server.url("gateway.burst"), ["*"])
    sent = asyncio.gather(*(callback(gateway, f"burst/{n}") for n in range(200)))
    await until(lambda: _at_least(jetstream, "BURST", 50), within=30)
    nats_server.stop()
    await asyncio.sleep(2.5)  # longer than an attempt may wait for its acknowledgement
    nats_server.start()
    await sent
    await until(lambda: _at_least(jetstream, "BURST", 200), within=60)
    await asyncio.sleep(0.5)  # a resend still under way would show now
    messages = await stored(jetstream, "BURST")
    ids = [m.headers["webhook-id"] for m in messages]
    assert len(ids) == len(set(ids)) == 200
    outcomes = [line["outcome"] for line in logs.all() if line.get("event") == "webhook.attempt"]
    assert outcomes.count("retrying") > 0  # the outage was felt, and made up for
    assert outcomes.count("succeeded") >= 200


async def _at_least(client: Client, stream: str, count: int) -> bool:
    try:
        return await stream_count(client, stream) >= count
    except (nats.errors.Error, TimeoutError):  # the broker is restarting
        return False


async def test_a_sink_failing_long_is_disabled_and_announced_without_credentials(
    make_gateway: MakeGateway,
    nats_server: NatsServer,  # noqa: F811
    jetstream: Client,
    receiver: Receiver,  # noqa: F811
) -> None:
    """A sink subscription failing for longer than disable_after is disabled like a webhook; the
    subscription.disabled event the tenant's other subscriptions get shows its URL without the
    broker's credentials, and its reason quotes the last error."""
    gateway = await make_events_gateway(
        make_gateway, retry_schedule=[0, *[0.05] * 10], disable_after=0.12
    )
    failing = await subscribe(gateway, nats_server.url("gateway.nowhere"), ["acme.done"])
    await subscribe(gateway, receiver.url("watcher"), ["subscription.disabled"])
    await callback(gateway, "nats/disabled")

    async def notice() -> bool:
        return bool(receiver.bodies("watcher"))

    await until(notice)
    [delivered] = receiver.bodies("watcher")
    data = orjson.loads(delivered["body"])["data"]
    assert data["subscriptionId"] == failing["id"]
    assert data["url"] == nats_server.url("gateway.nowhere", credentials=False)
    assert "no JetStream stream captures the subject 'gateway.nowhere'" in data["reason"]
    assert nats_server.password not in delivered["body"].decode()


async def test_sink_urls_are_checked_at_create_time(
    gateway: Gateway,
    nats_server: NatsServer,  # noqa: F811
) -> None:
    """A nats URL without a subject, or with a wildcard, an unknown scheme, are each a 422 that
    points at `url`; the answer never quotes the broker's password."""
    for url, detail in [
        (nats_server.url(""), "names the subject to publish on"),
        (nats_server.url("orders.*"), "must not hold spaces or wildcards"),
        ("kafka://127.0.0.1:9092/orders", "or one of an installed sink ("),
    ]:
        response = await gateway.client.post(
            "/v1/subscriptions", json={"url": url, "eventTypes": ["*"]}, headers=gateway.auth()
        )
        assert response.status == 422, url
        problem = await response.json()
        assert problem["errors"][0]["location"] == "/url"
        assert detail in problem["detail"]
        assert nats_server.password not in await response.text()


async def test_a_broker_outside_allowed_targets_is_refused(
    make_gateway: MakeGateway,
    nats_server: NatsServer,  # noqa: F811
) -> None:
    """`[events] allowed_targets` holds broker hosts as it does webhook hosts: a 422 at create time
    (the same check runs at every attempt, in the core, whatever the transport)."""
    gateway = await make_events_gateway(make_gateway, allowed_targets=["10.0.0.0/8"])
    response = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": nats_server.url("gateway.refused"), "eventTypes": ["*"]},
        headers=gateway.auth(),
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["errors"] == [
        {"location": "/url", "message": "address 127.0.0.1 is not in [events] allowed_targets"}
    ]
