"""A webhook subscriber for tests: a real local HTTP server that records each delivery and verifies
its Standard Webhooks signature."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import attrs
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.testing.waiting import eventually

__all__ = ["Delivery", "WebhookSubscriber", "verify_webhook", "webhook_subscriber"]

# Standard Webhooks: a delivery whose timestamp is further off than this is refused.
WEBHOOK_TOLERANCE_S = 300.0


def verify_webhook(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> bool:
    """Whether a delivery carries a Standard Webhooks signature by one of `secrets` (`whsec_…`)
    and a timestamp within 5 minutes of `now`.

    Written from the specification rather than with the gateway's signing code, so that it checks
    that code instead of agreeing with it.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > WEBHOOK_TOLERANCE_S:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    given = [
        part.removeprefix("v1,")
        for part in lowered.get("webhook-signature", "").split()
        if part.startswith("v1,")
    ]
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, signature) for signature in given):
            return True
    return False


@attrs.frozen
class Delivery:
    """One request the subscriber received: headers (names lower-cased), body, and whether its
    signature verified."""

    headers: Mapping[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        """The event it carries, `{id, type, tenant, backend, occurredAt, data}`."""
        event: dict[str, Any] = orjson.loads(self.body)
        return event


@attrs.define
class WebhookSubscriber:
    """A subscriber endpoint: `url` to subscribe, `secrets` it verifies with (add each
    subscription's, as `SandboxGateway.subscribe` does), and every delivery it received."""

    url: str
    secrets: list[str] = attrs.field(factory=list, repr=False)
    deliveries: list[Delivery] = attrs.field(factory=list)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events of the verified deliveries (of one type if given), in arrival order."""
        found = [d.event for d in self.deliveries if d.verified]
        return [e for e in found if event_type is None or e["type"] == event_type]

    async def wait_for(
        self, event_type: str | None = None, *, count: int = 1, within: float = 5.0
    ) -> list[dict[str, Any]]:
        """The verified events (of `event_type` if given), once at least `count` arrived."""
        await eventually(lambda: len(self.events(event_type)) >= count, within)
        return self.events(event_type)

    def assert_clean(self) -> None:
        refused = [d.headers.get("webhook-id") for d in self.deliveries if not d.verified]
        assert not refused, f"deliveries whose signature did not verify: {refused}"


@contextlib.asynccontextmanager
async def webhook_subscriber(*, host: str = "127.0.0.1") -> AsyncIterator[WebhookSubscriber]:
    """A subscriber served on a free local port: 204 to a verified delivery, 401 to any other.
    Fails when it stops if any delivery did not verify."""
    subscriber = WebhookSubscriber(url="")

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        verified = verify_webhook(subscriber.secrets, headers, body)
        subscriber.deliveries.append(Delivery(headers, body, verified))
        return web.Response(status=204 if verified else 401)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    server = TestServer(app, host=host)
    await server.start_server()
    try:
        subscriber.url = str(server.make_url("/hooks"))
        yield subscriber
    finally:
        await server.close()
    subscriber.assert_clean()
