"""Every list whose contract says "newest first" or "oldest first" is checked to be in that order.

The words are read from the contract, so a list whose description changes, or a new ordered list,
fails here until it has a probe that creates items in a known order and reads them back.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from PIL import Image

from gateway.testing import SandboxGateway, StartGateway
from tests.conftest import CALLBACK_SECRET_A, Gateway, gateway_contract

ORDER_WORDS = re.compile(r"\b(newest|oldest) first\b")


def _schema(node: Any) -> Any:
    """A `$ref` followed to what it names."""
    document = gateway_contract().document
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def claimed_orders() -> dict[str, str]:
    """operationId -> "newest" or "oldest": what its description, and the description of what it
    answers 200 with, say about the order of the items."""
    contract = gateway_contract()  # fragments' lists too
    document = contract.document
    orders: dict[str, str] = {}
    for operation_id, operation in contract.operations.items():
        node = document["paths"][operation.path][operation.method.lower()]
        ok = _schema(node.get("responses", {}).get("200", {}))
        schema = _schema(ok.get("content", {}).get("application/json", {}).get("schema", {}))
        texts = [node.get("description", ""), schema.get("description", "")]
        words = {word for text in texts for word in ORDER_WORDS.findall(text)}
        assert len(words) <= 1, f"{operation_id} claims two orders: {words}"
        if words:
            orders[operation_id] = words.pop()
    return orders


async def _callback(gateway: Gateway, path: str) -> None:
    response = await gateway.client.post(
        f"/callbacks/acme/tenant-a/{path}", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert response.status == 204, await response.text()


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def _subscribe(gateway: Gateway, n: int) -> str:
    body = {"url": f"http://127.0.0.1:9/hook{n}", "eventTypes": ["*"]}
    created = await _ok(
        await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth()), 201
    )
    subscription_id: str = created["id"]
    return subscription_id


# Each probe creates three or more items one after the other and returns (their ids in creation
# order, the ids as the list answers them).
Probe = Callable[[Any], Awaitable[tuple[list[str], list[str]]]]


async def probe_events(gateway: Gateway) -> tuple[list[str], list[str]]:
    created = []
    for n in range(3):
        await _callback(gateway, f"done/{n}")
        page = await _ok(await gateway.client.get("/v1/events", headers=gateway.auth()))
        [new] = [e["id"] for e in page["items"] if e["data"]["path"] == f"done/{n}"]
        created.append(new)
    listed = await _ok(await gateway.client.get("/v1/events", headers=gateway.auth()))
    return created, [e["id"] for e in listed["items"]]


async def probe_subscriptions(gateway: Gateway) -> tuple[list[str], list[str]]:
    created = [await _subscribe(gateway, n) for n in range(3)]
    listed = await _ok(await gateway.client.get("/v1/subscriptions", headers=gateway.auth()))
    return created, [s["id"] for s in listed["items"]]


async def probe_deliveries(gateway: Gateway) -> tuple[list[str], list[str]]:
    """One delivery from the fan-out, then two redeliveries, each later than the one before."""
    first = await _subscribe(gateway, 1)
    await _callback(gateway, "done/x")
    [event] = (await _ok(await gateway.client.get("/v1/events", headers=gateway.auth())))["items"]
    url = f"/v1/events/{event['id']}/deliveries"
    [fanned] = (await _ok(await gateway.client.get(url, headers=gateway.auth())))["items"]
    created = [fanned["id"]]
    for _ in range(2):
        again = await _ok(
            await gateway.client.post(
                f"/v1/events/{event['id']}/redeliver",
                json={"subscriptionId": first},
                headers=gateway.auth(),
            ),
            202,
        )
        created += [d["id"] for d in again["deliveries"]]
    listed = await _ok(await gateway.client.get(url, headers=gateway.auth()))
    return created, [d["id"] for d in listed["items"]]


async def probe_subscription_deliveries(gateway: Gateway) -> tuple[list[str], list[str]]:
    """Three events' deliveries to one subscription, one after the other."""
    subscription = await _subscribe(gateway, 1)
    created = []
    for n in range(3):
        await _callback(gateway, f"done/s{n}")
        page = await _ok(await gateway.client.get("/v1/events", headers=gateway.auth()))
        [event] = [e["id"] for e in page["items"] if e["data"]["path"] == f"done/s{n}"]
        url = f"/v1/events/{event}/deliveries"
        created += [
            d["id"]
            for d in (await _ok(await gateway.client.get(url, headers=gateway.auth())))["items"]
        ]
    url = f"/v1/subscriptions/{subscription}/deliveries"
    listed = await _ok(await gateway.client.get(url, headers=gateway.auth()))
    return created, [d["id"] for d in listed["items"]]


@pytest.fixture
async def artifi(start_gateway: StartGateway) -> SandboxGateway:
    """A gateway in front of the Artifi sandbox (the kit's), for listUserPhotos."""
    return await start_gateway("artifi")


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def probe_user_photos(gateway: SandboxGateway) -> tuple[list[str], list[str]]:
    created = []
    path = "/v1/users/u-order/photos"
    for n in range(3):
        form = FormData()
        form.add_field("file", _jpeg(), filename=f"p{n}.jpg", content_type="image/jpeg")
        uploaded = await gateway.client.post(path, data=form, headers=gateway.auth())
        created.append((await _ok(uploaded, 201))["id"])
    listed = await _ok(await gateway.client.get(path, headers=gateway.auth()))
    return created, [p["id"] for p in listed["items"]]


# operationId -> the probe and the fixture it runs against.
PROBES: dict[str, tuple[Probe, str]] = {
    "listEvents": (probe_events, "gateway"),
    "listSubscriptions": (probe_subscriptions, "gateway"),
    "listEventDeliveries": (probe_deliveries, "gateway"),
    "listSubscriptionDeliveries": (probe_subscription_deliveries, "gateway"),
    "listUserPhotos": (probe_user_photos, "artifi"),
}


@pytest.fixture
def subject(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """The operation under test and the gateway its probe needs (async fixtures are set up
    here, outside the test's running loop)."""
    operation_id: str = request.param
    return operation_id, request.getfixturevalue(PROBES[operation_id][1])


def test_every_list_that_claims_an_order_has_a_probe() -> None:
    """An ordered list added to the contract (or a probe left for one that no longer claims an
    order) fails here: its order would otherwise go unchecked."""
    assert set(claimed_orders()) == set(PROBES)


@pytest.mark.parametrize("subject", sorted(PROBES), indirect=True)
async def test_list_is_in_the_order_its_contract_states(subject: tuple[str, Any]) -> None:
    """Items created one after the other come back in the order the contract's words say."""
    operation_id, target = subject
    created, listed = await PROBES[operation_id][0](target)
    assert len(created) == len(set(created)) >= 3
    expected = created if claimed_orders()[operation_id] == "oldest" else created[::-1]
    assert [i for i in listed if i in created] == expected
