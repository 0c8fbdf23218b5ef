"""Subscriptions and durable, signed fan-out to subscribers, checked with the reference library."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

from gateway.state import STORE
from tests.conftest import CALLBACK_SECRET_A, CALLER_KEY_B, Gateway, MakeGateway, eventually


@attrs.define
class Receiver:
    """A subscriber: a real server recording what it got, told per path how to answer."""

    server: TestServer
    got: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = attrs.field(factory=dict)
    hang: set[str] = attrs.field(factory=set)
    release: asyncio.Event = attrs.field(factory=asyncio.Event)

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))

    def bodies(self, name: str) -> list[dict[str, Any]]:
        return self.got.get(name, [])


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[Receiver]:
    state = Receiver(server=None)  # type: ignore[arg-type]

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        got = {"headers": dict(request.headers), "body": body, "at": time.monotonic()}
        state.got.setdefault(name, []).append(got)
        if name in state.hang:
            await state.release.wait()
        queued = state.answers.get(name)
        if queued:
            status, headers = queued.pop(0)
            return web.Response(status=status, headers=headers, text="not now")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    state.server = await aiohttp_server(app)
    yield state
    state.release.set()


async def subscribe(gateway: Gateway, url: str, types: list[str], key: str | None = None) -> Any:
    headers = gateway.auth(key) if key else gateway.auth()
    response = await gateway.client.post(
        "/v1/subscriptions", json={"url": url, "eventTypes": types}, headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def callback(gateway: Gateway, path: str) -> None:
    response = await gateway.client.post(
        f"/callbacks/acme/tenant-a/{path}", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert response.status == 204, await response.text()


def verify(secret: str, delivered: dict[str, Any]) -> Any:
    headers = {k.lower(): v for k, v in delivered["headers"].items()}
    return Webhook(secret).verify(delivered["body"], headers)


async def test_subscription_crud_and_secret(gateway: Gateway, receiver: Receiver) -> None:
    """Create shows the whsec_ secret once; list/get never do; patch and delete work."""
    created = await subscribe(gateway, receiver.url("a"), ["acme.done"])
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) >= len("whsec_") + 32
    listed = await (await gateway.client.get("/v1/subscriptions", headers=gateway.auth())).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0]
    url = f"/v1/subscriptions/{created['id']}"
    patched = await gateway.client.patch(url, json={"enabled": False}, headers=gateway.auth())
    assert (await patched.json())["enabled"] is False
    other = await gateway.client.get(url, headers=gateway.auth(CALLER_KEY_B))
    assert other.status == 404
    assert (await gateway.client.delete(url, headers=gateway.auth())).status == 204
    assert (await gateway.client.get(url, headers=gateway.auth())).status == 404


async def test_subscription_input_is_checked(gateway: Gateway) -> None:
    """Targets outside allowed_targets and unknown event types are 422 problems naming them."""
    outside = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": "http://198.51.100.7/hook", "eventTypes": ["acme.done"]},
        headers=gateway.auth(),
    )
    assert outside.status == 422
    assert (await outside.json())["errors"][0]["location"] == "/url"
    unknown = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": "http://127.0.0.1:9/x", "eventTypes": ["acme.done", "made.up"]},
        headers=gateway.auth(),
    )
    body = await unknown.json()
    assert unknown.status == 422
    assert body["errors"][0]["location"] == "/eventTypes/1"
    assert "acme.done" in body["validNames"]
    ftp = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": "ftp://127.0.0.1/x", "eventTypes": ["*"]},
        headers=gateway.auth(),
    )
    assert ftp.status == 422


async def test_callback_fans_out_signed_to_the_tenants_subscribers(
    gateway: Gateway, receiver: Receiver
) -> None:
    """One callback reaches both of tenant A's subscribers, verifiable, and none of tenant B's."""
    first = await subscribe(gateway, receiver.url("one"), ["acme.done"])
    second = await subscribe(gateway, receiver.url("two"), ["*"])
    await subscribe(gateway, receiver.url("other-tenant"), ["*"], key=CALLER_KEY_B)
    await subscribe(gateway, receiver.url("other-type"), ["gateway.test"])
    await callback(gateway, "job/1")
    await eventually(lambda: bool(receiver.bodies("one")) and bool(receiver.bodies("two")))
    for name, subscription in (("one", first), ("two", second)):
        [delivered] = receiver.bodies(name)
        payload = verify(subscription["secret"], delivered)
        assert payload["type"] == "acme.done"
        assert payload["tenant"] == "tenant-a"
        assert payload["data"] == {"path": "job/1"}
        assert delivered["headers"]["webhook-id"] == payload["id"]
    await asyncio.sleep(0.1)
    assert receiver.bodies("other-tenant") == []
    assert receiver.bodies("other-type") == []


async def test_duplicate_callback_is_not_fanned_out_twice(
    gateway: Gateway, receiver: Receiver
) -> None:
    """The same upstream callback twice within the window: one event, one delivery."""
    await subscribe(gateway, receiver.url("one"), ["*"])
    await callback(gateway, "same/1")
    again = await gateway.client.post(
        "/callbacks/acme/tenant-a/same/1", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert again.status == 204
    await eventually(lambda: bool(receiver.bodies("one")))
    await asyncio.sleep(0.1)
    assert len(receiver.bodies("one")) == 1


async def test_failed_attempts_are_retried_and_recorded(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """A 500 then a 204: two attempts with the same webhook-id, both listed for the event."""
    gateway = await make_events_gateway(make_gateway, retry_schedule=[0, 0.05, 0.05])
    await subscribe(gateway, receiver.url("flaky"), ["*"])
    receiver.answers["flaky"] = [(500, {})]
    await callback(gateway, "retry/1")
    await eventually(lambda: len(receiver.bodies("flaky")) == 2)
    ids = {d["headers"]["webhook-id"] for d in receiver.bodies("flaky")}
    assert len(ids) == 1
    [event_id] = ids
    await wait_until_final(gateway, event_id)
    response = await gateway.client.get(f"/v1/events/{event_id}/deliveries", headers=gateway.auth())
    [delivery] = (await response.json())["items"]
    assert delivery["status"] == "succeeded"
    assert [a["status"] for a in delivery["attempts"]] == [500, 204]
    assert delivery["attempts"][0]["responseExcerpt"] == "not now"


async def test_an_events_deliveries_are_the_tenants_own(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """An event's deliveries, read before the event: an event no subscription took lists none
    (200), another tenant's event and an unknown one are 404 (its deliveries are not shown)."""
    gateway = await make_events_gateway(make_gateway)
    await callback(gateway, "alone/1")
    await subscribe(gateway, receiver.url("a"), ["*"])
    await callback(gateway, "taken/1")
    await eventually(lambda: len(receiver.bodies("a")) == 1)
    listed = await (await gateway.client.get("/v1/events", headers=gateway.auth())).json()
    taken, alone = (e["id"] for e in listed["items"])
    none = await gateway.client.get(f"/v1/events/{alone}/deliveries", headers=gateway.auth())
    assert none.status == 200
    assert (await none.json())["items"] == []
    url = f"/v1/events/{taken}/deliveries"
    assert len((await (await gateway.client.get(url, headers=gateway.auth())).json())["items"]) == 1
    other = await gateway.client.get(url, headers=gateway.auth(CALLER_KEY_B))
    assert other.status == 404
    assert "dlv_" not in await other.text()
    unknown = await gateway.client.get("/v1/events/evt_nope/deliveries", headers=gateway.auth())
    assert unknown.status == 404


async def wait_until_final(gateway: Gateway, event_id: str) -> None:
    """Wait until every delivery of the event is succeeded or failed."""
    store = gateway.client.app[STORE]
    async with asyncio.timeout(5):
        while True:
            deliveries = await store.list_deliveries("tenant-a", event_id)
            if deliveries and all(d.status in {"succeeded", "failed"} for d in deliveries):
                return
            await asyncio.sleep(0.02)


async def make_events_gateway(
    make_gateway: MakeGateway,
    *,
    resolver: AbstractResolver | None = None,
    store_url: str | None = None,
    **events: Any,
) -> Gateway:
    gateway: Gateway = await make_gateway(
        events={"jitter": 0, "poll_interval": 0.02, **events},
        resolver=resolver,
        store_url=store_url,
    )
    return gateway


async def test_retries_give_up_after_the_schedule(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """After the last attempt of the schedule the delivery is failed, and redeliverable."""
    gateway = await make_events_gateway(make_gateway, retry_schedule=[0, 0.02])
    await subscribe(gateway, receiver.url("down"), ["*"])
    receiver.answers["down"] = [(503, {}), (503, {})]
    await callback(gateway, "give-up/1")
    await eventually(lambda: len(receiver.bodies("down")) == 2)
    event_id = receiver.bodies("down")[0]["headers"]["webhook-id"]
    await wait_until_final(gateway, event_id)
    deliveries = await gateway.client.app[STORE].list_deliveries("tenant-a", event_id)
    assert [d.status for d in deliveries] == ["failed"]
    redone = await gateway.client.post(f"/v1/events/{event_id}/redeliver", headers=gateway.auth())
    assert redone.status == 202
    assert len((await redone.json())["deliveries"]) == 1
    await eventually(lambda: len(receiver.bodies("down")) == 3)


async def test_410_disables_and_tells_the_other_subscriptions(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """A 410 disables the subscription; a subscription.disabled event reaches the others."""
    gateway = await make_events_gateway(make_gateway)
    gone = await subscribe(gateway, receiver.url("gone"), ["acme.done"])
    await subscribe(gateway, receiver.url("watcher"), ["subscription.disabled"])
    receiver.answers["gone"] = [(410, {})]
    await callback(gateway, "gone/1")
    await eventually(lambda: bool(receiver.bodies("watcher")))
    [notice] = receiver.bodies("watcher")
    import orjson

    payload = orjson.loads(notice["body"])
    assert payload["type"] == "subscription.disabled"
    assert payload["data"]["subscriptionId"] == gone["id"]
    got = await gateway.client.get(f"/v1/subscriptions/{gone['id']}", headers=gateway.auth())
    body = await got.json()
    assert body["enabled"] is False
    assert "410" in body["disabledReason"]
    await callback(gateway, "gone/2")
    await asyncio.sleep(0.1)
    assert len(receiver.bodies("gone")) == 1


async def test_429_retry_after_is_honoured(make_gateway: MakeGateway, receiver: Receiver) -> None:
    """A 429 with Retry-After: 1 is not retried before a second has passed."""
    gateway = await make_events_gateway(make_gateway, retry_schedule=[0, 0.01, 0.01])
    await subscribe(gateway, receiver.url("busy"), ["*"])
    receiver.answers["busy"] = [(429, {"Retry-After": "1"})]
    started = time.monotonic()
    await callback(gateway, "busy/1")
    await eventually(lambda: len(receiver.bodies("busy")) == 2, within=5)
    assert time.monotonic() - started >= 0.9


async def test_continuous_failure_disables_the_subscription(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """A subscription failing for longer than disable_after is disabled."""
    gateway = await make_events_gateway(
        make_gateway, retry_schedule=[0, 0.05, 0.05, 0.05, 0.05, 0.05], disable_after=0.12
    )
    failing = await subscribe(gateway, receiver.url("broken"), ["*"])
    receiver.answers["broken"] = [(500, {})] * 10
    await callback(gateway, "broken/1")

    async def disabled() -> bool:
        found = await gateway.client.app[STORE].get_subscription("tenant-a", failing["id"])
        return found is not None and not found.enabled

    async with asyncio.timeout(5):
        while not await disabled():  # noqa: ASYNC110 - polling the store
            await asyncio.sleep(0.02)
    found = await gateway.client.app[STORE].get_subscription("tenant-a", failing["id"])
    assert found is not None
    assert "failed" in (found.disabled_reason or "")


async def test_rotation_signs_with_both_secrets_during_grace(
    gateway: Gateway, receiver: Receiver
) -> None:
    """After a rotation, deliveries verify with the old and the new secret."""
    created = await subscribe(gateway, receiver.url("rotating"), ["*"])
    rotated = await gateway.client.post(
        f"/v1/subscriptions/{created['id']}/secret/rotate",
        json={"graceSeconds": 3600},
        headers=gateway.auth(),
    )
    assert rotated.status == 200
    new_secret = (await rotated.json())["secret"]
    assert new_secret != created["secret"]
    await callback(gateway, "rotate/1")
    await eventually(lambda: bool(receiver.bodies("rotating")))
    [delivered] = receiver.bodies("rotating")
    assert len(delivered["headers"]["webhook-signature"].split(" ")) == 2
    assert verify(created["secret"], delivered)["type"] == "acme.done"
    assert verify(new_secret, delivered)["type"] == "acme.done"


async def test_test_event_goes_to_one_subscription(gateway: Gateway, receiver: Receiver) -> None:
    """sendTestEvent delivers a gateway.test event to that subscription only."""
    target = await subscribe(gateway, receiver.url("target"), ["acme.done"])
    await subscribe(gateway, receiver.url("bystander"), ["*"])
    response = await gateway.client.post(
        f"/v1/subscriptions/{target['id']}/test", headers=gateway.auth()
    )
    assert response.status == 202
    event = await response.json()
    await eventually(lambda: bool(receiver.bodies("target")))
    assert verify(target["secret"], receiver.bodies("target")[0])["id"] == event["id"]
    await asyncio.sleep(0.1)
    assert receiver.bodies("bystander") == []


async def test_slow_subscriber_does_not_delay_the_others(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """One subscriber hangs; the other receives every event promptly."""
    gateway = await make_events_gateway(make_gateway, per_subscription=2, attempt_timeout=30)
    await subscribe(gateway, receiver.url("hangs"), ["*"])
    await subscribe(gateway, receiver.url("answers"), ["*"])
    receiver.hang.add("hangs")
    started = time.monotonic()
    for n in range(40):
        await callback(gateway, f"burst/{n}")
    await eventually(lambda: len(receiver.bodies("answers")) == 40, within=10)
    assert time.monotonic() - started < 5
    assert len(receiver.bodies("hangs")) <= 2  # its share of the pool, no more


# Raw answers from a subscriber that does not speak HTTP properly, and what the attempt records.
MISBEHAVIOURS = {
    "garbage-retry-after": (b"HTTP/1.1 429 Too Many\r\nRetry-After: \xc2\xb2\r\n", "HTTP 429"),
    "huge-retry-after": (b"HTTP/1.1 429 Too Many\r\nRetry-After: " + b"9" * 5000 + b"\r\n", "429"),
    "undecodable-retry-after": (b"HTTP/1.1 502 x\r\nRetry-After: \xff\xfe\r\n", "HTTP 502"),
    "bad-header-name": (b"HTTP/1.1 503 x\r\nX-\xfe: 1\r\n", "ClientResponseError"),
    "garbage-status-line": (b"NOT HTTP AT ALL\r\n", "Error"),
    "reset": (None, "Error"),
    "never-ends": (b"HTTP/1.1 200 OK\r\n", "timed out"),
}


@pytest.mark.parametrize("behaviour", sorted(MISBEHAVIOURS))
async def test_every_attempt_ends_recorded_whatever_the_subscriber_answers(
    make_gateway: MakeGateway, behaviour: str
) -> None:
    """Whatever comes back (garbage headers, a reset, an answer that never ends, bounded by
    attempt_timeout), each attempt is recorded with its error and the delivery moves on to
    `failed` after the schedule: none stays leased and unrecorded."""
    head, error = MISBEHAVIOURS[behaviour]
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        if head is None:  # a reset connection: RST, not FIN
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        elif behaviour == "never-ends":
            writer.write(head)
            await asyncio.sleep(3600)
        else:
            writer.write(head + b"Content-Length: 7\r\n\r\nnot now")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gateway = await make_events_gateway(
            make_gateway, retry_schedule=[0, 0.05], attempt_timeout=0.5, retry_after_cap=0.1
        )
        await subscribe(gateway, f"http://127.0.0.1:{port}/hook", ["*"])
        await callback(gateway, f"misbehave/{behaviour}")
        await eventually(lambda: len(seen) == 2, within=10)
        event_id = await only_event_id(gateway)
        await wait_until_final(gateway, event_id)
        [delivery] = await gateway.client.app[STORE].list_deliveries("tenant-a", event_id)
        assert delivery.status == "failed"
        assert len(delivery.attempt_log) == 2
        assert all(error in (a.error or "") for a in delivery.attempt_log), delivery.attempt_log
    finally:
        server.close()


async def only_event_id(gateway: Gateway) -> str:
    listed = await gateway.client.get("/v1/events", headers=gateway.auth())
    [event] = (await listed.json())["items"]
    return str(event["id"])
