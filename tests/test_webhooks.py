"""Subscriptions and durable, signed fan-out to subscribers, checked with the reference library:
a subscription's life, fan-out to the tenant's matching subscribers once, an event's deliveries,
secret rotation, test events, and a slow subscriber that delays no other."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import CALLBACK_SECRET_A, CALLER_KEY_B, Gateway, MakeGateway, eventually
from tests.subscribers import Receiver, callback, make_events_gateway, receiver, subscribe, verify

__all__ = ["receiver"]  # the fixture, for this module's tests


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
