"""Events delivered to RabbitMQ through the rabbitmq sink plugin, end to end: a callback to the real
app, the event recorded, published (persistent, confirmed, mandatory) to a real RabbitMQ node, read
back by a consumer that verifies the signature as a webhook subscriber does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import aiormq.exceptions
import attrs
import pytest
from aiormq.abc import AbstractChannel
from standardwebhooks.webhooks import Webhook

from gateway.state import STORE
from gateway.testing import GatewayLogs
from tests import conftest
from tests.brokers import RabbitServer, rabbit_server  # noqa: F401 - the session's RabbitMQ node
from tests.conftest import MakeGateway
from tests.subscribers import callback, make_events_gateway, subscribe
from tests.test_sink_nats import QUICK_RETRIES, until

EXCHANGE = "gateway-events"


@attrs.define
class Consumer:
    """A channel of the session's node, and the queues a test bound (deleted after it)."""

    channel: AbstractChannel
    queues: list[str] = attrs.field(factory=list)

    async def bind(self, name: str, routing_key: str) -> None:
        """A durable queue that the exchange routes `routing_key` to."""
        await self.channel.queue_declare(name, durable=True)
        await self.channel.queue_bind(name, EXCHANGE, routing_key=routing_key)
        self.queues.append(name)


@pytest.fixture
async def amqp(rabbit_server: RabbitServer) -> AsyncIterator[Consumer]:  # noqa: F811
    """A consumer of the session's node with a durable topic exchange, the node's password among
    the secrets no log line may show."""
    conftest.SECRETS.append(rabbit_server.password)
    connection = await aiormq.connect(rabbit_server.client_url)
    consumer = Consumer(await connection.channel())
    await consumer.channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    yield consumer
    with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
        await connection.close()
    cleanup = await aiormq.connect(rabbit_server.client_url)  # the node may have restarted since
    channel = await cleanup.channel()
    for queue in consumer.queues:
        await channel.queue_delete(queue)
    await cleanup.close()


async def drain(channel: AbstractChannel, queue: str) -> list[Any]:
    """Every message the queue holds, taken (and acknowledged) in order."""
    taken = []
    while True:
        message = await channel.basic_get(queue)
        if message.delivery_tag is None or message.delivery.routing_key is None:
            return taken
        taken.append(message)
        await channel.basic_ack(message.delivery_tag)


async def waiting(url: str, queue: str) -> int:
    """How many messages the queue holds (0 while the node is away), asked on a connection of
    its own: the node restarts under the test's feet."""
    try:
        connection = await aiormq.connect(url)
    except (aiormq.exceptions.AMQPError, ConnectionError):
        return 0
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare(queue, passive=True)
        return declared.message_count or 0
    finally:
        await connection.close()


async def test_events_reach_rabbitmq_signed_and_persistent_on_each_store(
    make_gateway: MakeGateway,
    store_url: str,
    rabbit_server: RabbitServer,  # noqa: F811
    amqp: Consumer,
    logs: GatewayLogs,
) -> None:
    """A callback's event is routed by exchange and routing key to a queue: persistent (delivery
    mode 2), its message id the event id, the Standard Webhooks headers verifying with the
    reference library; the attempt is recorded as succeeded; the broker's password shows nowhere:
    not in the subscription's answers, nor in any log line."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url)
    await amqp.bind("orders", "product.#")
    url = rabbit_server.url(EXCHANGE, "product.completed")
    created = await subscribe(gateway, url, ["*"])
    assert created["url"] == rabbit_server.url(EXCHANGE, "product.completed", credentials=False)
    await callback(gateway, "amqp/1")
    await until(lambda: waiting(rabbit_server.client_url, "orders"))
    [message] = await drain(amqp.channel, "orders")
    properties = message.header.properties
    headers = {k: str(v) for k, v in (properties.headers or {}).items()}
    assert Webhook(created["secret"]).verify(message.body, headers)["type"]
    assert properties.message_id == headers["webhook-id"]
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    store = gateway.client.app[STORE]

    async def succeeded() -> bool:
        deliveries = await store.list_deliveries("tenant-a", headers["webhook-id"])
        return [d.status for d in deliveries] == ["succeeded"]

    await until(succeeded)
    listed = await gateway.client.get("/v1/subscriptions", headers=gateway.auth())
    assert rabbit_server.password not in await listed.text()
    assert rabbit_server.password not in logs.text()


async def test_unroutable_and_missing_exchanges_fail_and_are_retried(
    make_gateway: MakeGateway,
    rabbit_server: RabbitServer,  # noqa: F811
    amqp: Consumer,
) -> None:
    """Published with `mandatory`, a message no queue takes is returned: a failed attempt, not a
    silent loss; so is an exchange that does not exist (its closed channel is opened anew). Both
    are retried and arrive once a queue is bound."""
    gateway = await make_events_gateway(make_gateway, retry_schedule=QUICK_RETRIES)
    await subscribe(gateway, rabbit_server.url(EXCHANGE, "late.key"), ["*"])
    await subscribe(gateway, rabbit_server.url("no-such-exchange", "k"), ["*"])
    await callback(gateway, "amqp/late")
    store = gateway.client.app[STORE]

    async def errors() -> set[str] | None:
        page = await store.list_events("tenant-a", event_type=None, after=None, limit=5)
        found = {
            delivery.last_error
            for event in page.items
            for delivery in await store.list_deliveries("tenant-a", event.id)
            if delivery.last_error
        }
        return found if len(found) == 2 else None

    found = await until(errors)
    assert f"exchange '{EXCHANGE}' routed the message to no queue (routing key 'late.key')" in found
    assert any("no-such-exchange" in error and "NOT_FOUND" in error for error in found), found
    await amqp.bind("late", "late.key")
    await until(lambda: waiting(rabbit_server.client_url, "late"))


async def test_nothing_is_lost_when_the_broker_restarts_mid_burst(
    make_gateway: MakeGateway,
    store_url: str,
    rabbit_server: RabbitServer,  # noqa: F811
    amqp: Consumer,
    logs: GatewayLogs,
) -> None:
    """200 events; the node is stopped once about 50 are queued and started again: attempts fail
    meanwhile (recorded, retried), and all 200 arrive in the durable queue; a consumer
    de-duplicating by `webhook-id` (at least once) sees each once."""
    gateway = await make_events_gateway(
        make_gateway, store_url=store_url, retry_schedule=QUICK_RETRIES, attempt_timeout=2
    )
    await amqp.bind("burst", "burst")
    await subscribe(gateway, rabbit_server.url(EXCHANGE, "burst"), ["*"])
    sent = asyncio.gather(*(callback(gateway, f"burst/{n}") for n in range(200)))

    async def at_least(count: int) -> bool:
        return await waiting(rabbit_server.client_url, "burst") >= count

    await until(lambda: at_least(50), within=30)
    rabbit_server.stop()
    await asyncio.sleep(1.0)
    rabbit_server.start()
    await sent
    await until(lambda: at_least(200), within=90)
    await asyncio.sleep(0.5)  # a resend still under way would show now
    connection = await aiormq.connect(rabbit_server.client_url)
    messages = await drain(await connection.channel(), "burst")
    await connection.close()
    ids = {m.header.properties.message_id for m in messages}
    assert len(ids) == 200
    outcomes = [line["outcome"] for line in logs.all() if line.get("event") == "webhook.attempt"]
    assert outcomes.count("retrying") > 0  # the outage was felt, and made up for
