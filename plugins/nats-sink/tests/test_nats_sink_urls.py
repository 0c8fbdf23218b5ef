"""The nats sink's subscription URLs: what it accepts, and what it refuses and why (the 422's
message, which must never quote the URL's credentials)."""

from __future__ import annotations

import re

import pytest
from yarl import URL

from gateway.plugin_api import SinkContext
from gateway_nats_sink.sink import NatsSink, subject_of


async def _nowhere(host: str, port: int) -> list[str]:
    raise AssertionError("checking a URL connects nowhere")


SINK = NatsSink(SinkContext(resolve=_nowhere, timeout=1.0))


@pytest.mark.parametrize(
    ("url", "subject"),
    [
        ("nats://127.0.0.1:4222/orders", "orders"),
        ("nats://user:pw@broker.internal/gateway.products.completed", "gateway.products.completed"),
        ("nats://broker/a-b_c.D1", "a-b_c.D1"),
    ],
)
def test_a_subject_is_taken_from_the_path(url: str, subject: str) -> None:
    """The path, less its slash, is the subject published on."""
    SINK.check_url(URL(url))
    assert subject_of(URL(url)) == subject


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nats://user:s3cret-pass@broker:4222", "names the subject to publish on"),
        ("nats://broker/orders..done", "has an empty token"),
        ("nats://broker/orders.", "has an empty token"),
        ("nats://broker/orders.*", "must not hold spaces or wildcards"),
        ("nats://broker/orders.>", "must not hold spaces or wildcards"),
        ("nats://broker/orders%20done", "must not hold spaces or wildcards"),
        ("nats://broker/orders?stream=X", "takes no query or fragment"),
    ],
)
def test_a_wrong_url_is_refused_saying_why(url: str, reason: str) -> None:
    """Each mistake gets its own message; none quotes the password."""
    with pytest.raises(ValueError, match=re.escape(reason)) as raised:
        SINK.check_url(URL(url))
    assert "s3cret-pass" not in str(raised.value)


def test_the_sink_declares_its_scheme() -> None:
    """The core routes `nats:` URLs to this sink by its declaration."""
    assert NatsSink.name == "nats"
    assert NatsSink.schemes == frozenset({"nats"})
