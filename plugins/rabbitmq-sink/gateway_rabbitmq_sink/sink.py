"""Events published to RabbitMQ, each confirmed by the broker before it counts as sent.

A subscription URL is `amqp://[user:password@]host[:port]/exchange/routing-key[?vhost=name]`
(`amqps://` with TLS; port 5672, or 5671 with TLS, by default; virtual host `/` unless `vhost`
names another). An empty exchange (`amqp://host//queue`) is the default exchange, which routes to
the queue named by the routing key. The event's JSON is the message (persistent, delivery mode 2,
content type application/json, message id the event id) with the Standard Webhooks headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) as its headers, so a consumer verifies the
signature as a webhook subscriber does, and de-duplicates by `webhook-id`. Published with
publisher confirms and `mandatory`: a message the broker could not route to any queue (returned),
or refused (nack), or an exchange that does not exist, is a failed attempt, retried.

One connection per broker (host, credentials, virtual host), shared by every subscription to it,
with one confirming channel per exchange, each opened when first needed. aiormq rather than
aio-pika: its transport factory is how the connection goes to the address `[events]
allowed_targets` resolved, looked up once per connection (TLS still verifies the host's name);
aio-pika drops that parameter.
A connection or channel that closed (a broker restart) is opened anew by the next attempt.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiormq
import aiormq.exceptions
from aiormq.abc import AbstractChannel, AbstractConnection
from aiormq.connection import TransportFactory
from pamqp.commands import Basic
from yarl import URL

from gateway.plugin_api import ConnectionPool, SendOutcome, Sink, SinkContext

PORTS = {"amqp": 5672, "amqps": 5671}
PERSISTENT = 2

Broker = tuple[str, str, int, str | None, str | None, str]  # scheme, host, port, user, pw, vhost


def route_of(url: URL) -> tuple[str, str]:
    """The exchange and routing key a URL publishes with, or ValueError saying what is wrong."""
    parts = url.raw_path.split("/")
    if len(parts) != 3:
        raise ValueError(
            "an amqp URL names an exchange and a routing key:"
            " amqp://host:port/exchange/routing-key (an empty exchange is the default one)"
        )
    exchange, routing_key = (urllib.parse.unquote(part) for part in parts[1:])
    if not routing_key and not exchange:
        raise ValueError("the default exchange routes by queue name: give it as the routing key")
    if len(exchange) > 255 or len(routing_key.encode()) > 255:
        raise ValueError("an exchange name or routing key is at most 255 bytes long")
    return exchange, routing_key


class PolicyTransport(TransportFactory):
    """Connects to the address the gateway's policy resolved for the URL's host."""

    def __init__(self, context: SinkContext) -> None:
        self.context = context

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kwargs.pop("ssl_context_provider", None)
        host, port = url.host or "", url.port or PORTS["amqp"]
        address = (await self.context.resolve(host, port))[0]
        tls = ssl.create_default_context() if url.scheme == "amqps" else None
        try:
            return await asyncio.open_connection(
                address, port, ssl=tls, server_hostname=host if tls else None, **kwargs
            )
        except OSError as exc:
            raise aiormq.exceptions.AMQPConnectionError(*exc.args) from exc


class RabbitSink(Sink):
    name = "rabbitmq"
    schemes = frozenset({"amqp", "amqps"})
    description = "RabbitMQ: persistent messages, publisher confirms, mandatory routing."

    def __init__(self, context: SinkContext) -> None:
        super().__init__(context)
        self._transport = PolicyTransport(context)
        self._connections: ConnectionPool[Broker, AbstractConnection] = ConnectionPool()
        # A channel per exchange: publishing to a missing exchange closes its channel, and
        # fails only the subscriptions to that exchange, not every one on the broker.
        self._channels: ConnectionPool[tuple[Broker, str], AbstractChannel] = ConnectionPool()

    def check_url(self, url: URL) -> None:
        route_of(url)
        unknown = set(url.query) - {"vhost"}
        if unknown or url.fragment:
            raise ValueError("an amqp URL takes no query parameter but vhost, and no fragment")

    async def send(
        self, target: URL, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> SendOutcome:
        exchange, routing_key = route_of(target)
        properties = Basic.Properties(
            content_type=headers.get("Content-Type", "application/json"),
            delivery_mode=PERSISTENT,
            message_id=event_id,
            headers={k: v for k, v in headers.items() if k != "Content-Type"},
        )
        where = f"exchange {exchange!r}" if exchange else "the default exchange"
        try:
            channel = await self._channel(target, exchange)
            confirmation = await channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                timeout=self.context.timeout,
            )
        except aiormq.exceptions.PublishError:
            return SendOutcome.failed(
                f"{where} routed the message to no queue (routing key {routing_key!r})"
            )
        except aiormq.exceptions.DeliveryError:
            return SendOutcome.failed(f"the broker refused the message ({where})")
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            return SendOutcome.failed(f"not found: {exc.args[-1] if exc.args else where}"[:300])
        except (aiormq.exceptions.AMQPError, OSError, RuntimeError) as exc:
            return SendOutcome.failed(f"{type(exc).__name__}: {exc}"[:300])
        if not isinstance(confirmation, Basic.Ack):
            return SendOutcome.failed(f"the broker did not confirm the message ({where})")
        return SendOutcome.delivered()

    async def _channel(self, target: URL, exchange: str) -> AbstractChannel:
        scheme = target.scheme
        vhost = target.query.get("vhost", "/")
        port = target.port or PORTS[scheme]
        broker: Broker = (scheme, target.host or "", port, target.user, target.password, vhost)
        return await self._channels.get((broker, exchange), lambda: self._open(broker))

    async def _open(self, broker: Broker) -> AbstractChannel:
        connection = await self._connections.get(broker, lambda: self._connect(broker))
        return await connection.channel(publisher_confirms=True, timeout=self.context.timeout)

    async def _connect(self, broker: Broker) -> AbstractConnection:
        scheme, host, port, user, password, vhost = broker
        url = URL.build(
            scheme=scheme, host=host, port=port, user=user, password=password, path="/" + vhost
        )
        return await aiormq.connect(url, transport_factory=self._transport)

    async def aclose(self) -> None:
        self._channels = ConnectionPool()
        await self._connections.close(lambda connection: connection.close())
