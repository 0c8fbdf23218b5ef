"""The README's snippets work as written: the subscriber guide's verifies real deliveries, and the
backend author's guide's test passes with the test kit's fixtures."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.plugin_api import StartGateway, WebhookSubscriber
from gateway.webhooks import signing
from tests.conftest import Gateway, eventually

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### Verifying deliveries (for subscribers)"
KIT_SECTION = "### Testing a backend: the test kit"

Verify = Callable[[str, bytes, dict[str, str]], dict[str, Any] | None]


def snippet(heading: str) -> dict[str, Any]:
    """The names the first Python block under `heading` defines, run as written."""
    text = README.read_text(encoding="utf-8")
    assert heading in text, f"README has no section {heading!r}"
    section = text.split(heading, 1)[1].split("\n#", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, f"{heading!r} has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), f"{README}:{heading}", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture(scope="module")
def verify_delivery() -> Verify:
    """`verify_delivery` as the README defines it."""
    function: Verify = snippet(SECTION)["verify_delivery"]
    return function


async def test_snippet_verifies_a_real_delivery(
    gateway: Gateway, aiohttp_server: Any, verify_delivery: Verify
) -> None:
    """A test event the gateway delivers verifies with the subscription's secret and yields the
    event; the same delivery with a changed body, or checked with another secret, is refused."""
    deliveries: list[tuple[bytes, dict[str, str]]] = []

    async def receive(request: web.Request) -> web.Response:
        deliveries.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server: TestServer = await aiohttp_server(app)
    subscriptions = []
    for _ in range(2):
        response = await gateway.client.post(
            "/v1/subscriptions",
            json={"url": str(server.make_url("/hook")), "eventTypes": ["gateway.test"]},
            headers=gateway.auth(),
        )
        assert response.status == 201, await response.text()
        subscriptions.append(await response.json())
    mine, other = subscriptions
    sent = await gateway.client.post(f"/v1/subscriptions/{mine['id']}/test", headers=gateway.auth())
    assert sent.status == 202
    event = await sent.json()
    await eventually(lambda: bool(deliveries))

    body, headers = deliveries[0]
    verified = verify_delivery(mine["secret"], body, headers)
    assert verified is not None
    assert verified["id"] == event["id"] == headers["webhook-id"]
    assert verified["data"]["subscriptionId"] == mine["id"]
    tampered = body.replace(b"gateway.test", b"gateway.tost")
    assert tampered != body
    assert verify_delivery(mine["secret"], tampered, headers) is None
    assert verify_delivery(other["secret"], body, headers) is None


def test_snippet_accepts_either_secret_during_rotation_and_refuses_replays(
    verify_delivery: Verify,
) -> None:
    """Signed by `gateway.webhooks.signing` with two live secrets, a delivery verifies with each;
    the same signature under a timestamp ten minutes old is refused."""
    old, new = signing.new_secret(), signing.new_secret()
    body = orjson.dumps({"id": "evt_1", "type": "gateway.test", "data": {}})
    now = int(time.time())
    headers = signing.headers([new, old], "evt_1", now, body)
    assert verify_delivery(old, body, headers) == orjson.loads(body)
    assert verify_delivery(new, body, headers) == orjson.loads(body)
    assert verify_delivery(signing.new_secret(), body, headers) is None
    stale = signing.headers([new], "evt_1", now - 600, body)
    assert verify_delivery(new, body, stale) is None


async def test_kit_snippet_passes_with_the_kits_fixtures(
    start_gateway: StartGateway, subscriber: WebhookSubscriber
) -> None:
    """The author's guide's example test, run as written with the fixtures pytest gives plugins'
    tests (`gateway.pytest_plugin`), passes."""
    test = snippet(KIT_SECTION)["test_acme_callbacks_reach_subscribers"]
    await test(start_gateway, subscriber)
    assert len(subscriber.deliveries) == 1
