"""Subscribers that fail: attempts retried on the schedule and recorded, given up and redelivered,
a 410 or failing for too long disables the subscription, Retry-After is honoured, and every
attempt ends recorded whatever a subscriber answers."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from gateway.state import STORE
from tests.conftest import MakeGateway, eventually
from tests.subscribers import (
    Receiver,
    callback,
    make_events_gateway,
    only_event_id,
    receiver,
    subscribe,
    wait_until_final,
)

__all__ = ["receiver"]  # the fixture, for this module's tests


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
