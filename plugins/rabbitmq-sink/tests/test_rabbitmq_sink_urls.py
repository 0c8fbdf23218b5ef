"""The RabbitMQ sink's subscription URLs: what it accepts, and what it refuses and why (the 422's
message, which must never quote the URL's credentials)."""

from __future__ import annotations

import re

import pytest
from yarl import URL

from gateway.plugin_api import SinkContext
from gateway_rabbitmq_sink.sink import RabbitSink, route_of


async def _nowhere(host: str, port: int) -> list[str]:
    raise AssertionError("checking a URL connects nowhere")


SINK = RabbitSink(SinkContext(resolve=_nowhere, timeout=1.0))


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("amqp://127.0.0.1:5672/events/product.completed", ("events", "product.completed")),
        ("amqps://u:p@broker.internal/events/orders?vhost=prod", ("events", "orders")),
        ("amqp://broker//work-queue", ("", "work-queue")),
        ("amqp://broker/events/", ("events", "")),
        ("amqp://broker/my%20exchange/key%2Fwith%2Fslashes", ("my exchange", "key/with/slashes")),
    ],
)
def test_exchange_and_routing_key_come_from_the_path(url: str, route: tuple[str, str]) -> None:
    """`/exchange/routing-key`, each percent-decoded; an empty exchange is the default one."""
    SINK.check_url(URL(url))
    assert route_of(URL(url)) == route


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("amqp://user:s3cret-pass@broker/events", "names an exchange and a routing key"),
        ("amqp://broker/a/b/c", "names an exchange and a routing key"),
        ("amqp://broker//", "the default exchange routes by queue name"),
        ("amqp://broker/" + "x" * 256 + "/k", "at most 255 bytes"),
        ("amqp://broker/events/k?exchange=other", "no query parameter but vhost"),
    ],
)
def test_a_wrong_url_is_refused_saying_why(url: str, reason: str) -> None:
    """Each mistake gets its own message; none quotes the password."""
    with pytest.raises(ValueError, match=re.escape(reason)) as raised:
        SINK.check_url(URL(url))
    assert "s3cret-pass" not in str(raised.value)


def test_the_sink_declares_its_schemes() -> None:
    """The core routes `amqp:` and `amqps:` URLs to this sink by its declaration."""
    assert RabbitSink.name == "rabbitmq"
    assert RabbitSink.schemes == frozenset({"amqp", "amqps"})
