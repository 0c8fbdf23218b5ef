"""The README's subscriber guide works: its snippet, run as written, verifies real deliveries."""

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

from gateway.webhooks import signing
from tests.conftest import Gateway, eventually

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### Verifying deliveries (for subscribers)"

Verify = Callable[[str, bytes, dict[str, str]], dict[str, Any] | None]


@pytest.fixture(scope="module")
def verify_delivery() -> Verify:
    """`verify_delivery` as the README defines it (the first Python block of its section)."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the subscriber section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), f"{README}:{SECTION}", "exec"), namespace)  # noqa: S102
    function: Verify = namespace["verify_delivery"]
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
