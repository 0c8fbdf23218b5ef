"""Subscription filters (JMESPath on the event document), end to end on SQLite and PostgreSQL:
the app with its store, events published through the plugin host as a backend's are, deliveries
made to a real receiver, every answer checked against the contract."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.state import PLUGINS, STORE
from gateway.testing import GatewayLogs
from gateway.values import Event
from gateway.webhooks import filters
from tests.conftest import CALLER_KEY_B, Gateway, MakeGateway, eventually
from tests.subscribers import Receiver, make_events_gateway, receiver

__all__ = ["receiver"]  # the fixture, for this module's tests


@pytest.fixture
async def gateway(make_gateway: MakeGateway, store_url: str) -> Gateway:
    """A gateway on each kind of store, its workers polling often."""
    return await make_events_gateway(make_gateway, store_url=store_url)


async def subscribe(
    gateway: Gateway, url: str, expression: str | None, types: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "eventTypes": types or ["acme.done"]}
    if expression is not None:
        body["filter"] = expression
    response = await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth())
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def patch(gateway: Gateway, subscription_id: str, body: dict[str, Any]) -> Any:
    response = await gateway.client.patch(
        f"/v1/subscriptions/{subscription_id}", json=body, headers=gateway.auth()
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def publish(gateway: Gateway, data: dict[str, Any], backend: str = "acme") -> str:
    """An acme.done event of tenant A, published as a backend publishes one; its id."""
    event = Event.new("acme.done", data, tenant="tenant-a", backend=backend)
    assert await gateway.client.app[PLUGINS].publish_event(event)
    return event.id


async def delivered_to(gateway: Gateway, event_id: str) -> set[str]:
    """The subscriptions the event's deliveries were recorded for."""
    deliveries = await gateway.client.app[STORE].list_deliveries("tenant-a", event_id)
    return {d.subscription_id for d in deliveries}


def received(receiver: Receiver, name: str) -> list[Any]:
    """The `data` of each event `name` received, in order."""
    return [orjson.loads(d["body"])["data"] for d in receiver.bodies(name)]


async def test_a_filter_on_data_delivers_only_matching_events(
    gateway: Gateway, receiver: Receiver
) -> None:
    """`data.productType == 'GARMENT_2D'`: only such events get a delivery; an unfiltered
    subscription gets every event; the answers show the filter."""
    garments = await subscribe(
        gateway, receiver.url("garments"), "data.productType == 'GARMENT_2D'"
    )
    assert garments["filter"] == "data.productType == 'GARMENT_2D'"
    everything = await subscribe(gateway, receiver.url("all"), None)
    assert everything["filter"] is None
    kept = await publish(gateway, {"productType": "GARMENT_2D", "n": 1})
    dropped = await publish(gateway, {"productType": "SHOE_3D", "n": 2})
    missing = await publish(gateway, {"n": 3})
    assert await delivered_to(gateway, kept) == {garments["id"], everything["id"]}
    assert await delivered_to(gateway, dropped) == {everything["id"]}
    assert await delivered_to(gateway, missing) == {everything["id"]}
    await eventually(lambda: len(receiver.bodies("all")) == 3)
    await eventually(lambda: len(receiver.bodies("garments")) == 1)
    assert received(receiver, "garments") == [{"productType": "GARMENT_2D", "n": 1}]
    shown = await gateway.client.get(f"/v1/subscriptions/{garments['id']}", headers=gateway.auth())
    assert (await shown.json())["filter"] == "data.productType == 'GARMENT_2D'"


async def test_prefix_and_backend_list_filters(gateway: Gateway, receiver: Receiver) -> None:
    """`starts_with(data.sku, 'ABC-')` keeps the prefixed SKUs; `contains([...], backend)` keeps
    the listed backends' events."""
    prefixed = await subscribe(gateway, receiver.url("abc"), "starts_with(data.sku, 'ABC-')")
    listed = await subscribe(
        gateway, receiver.url("listed"), "contains(['pictofit', 'artifi'], backend)"
    )
    abc = await publish(gateway, {"sku": "ABC-1"}, backend="acme")
    xyz = await publish(gateway, {"sku": "XYZ-ABC-2"}, backend="pictofit")
    artifi = await publish(gateway, {"sku": "ABC-3"}, backend="artifi")
    assert await delivered_to(gateway, abc) == {prefixed["id"]}
    assert await delivered_to(gateway, xyz) == {listed["id"]}
    assert await delivered_to(gateway, artifi) == {prefixed["id"], listed["id"]}


async def test_updating_and_removing_a_filter(gateway: Gateway, receiver: Receiver) -> None:
    """The next events follow a changed filter; a PATCH without `filter` keeps it; null removes
    it, and every event of the types is delivered again."""
    created = await subscribe(gateway, receiver.url("a"), "data.n == `1`")
    sid = created["id"]
    assert await delivered_to(gateway, await publish(gateway, {"n": 1})) == {sid}
    assert await delivered_to(gateway, await publish(gateway, {"n": 2})) == set()
    changed = await patch(gateway, sid, {"filter": "data.n == `2`"})
    assert changed["filter"] == "data.n == `2`"
    assert await delivered_to(gateway, await publish(gateway, {"n": 1})) == set()
    assert await delivered_to(gateway, await publish(gateway, {"n": 2})) == {sid}
    kept = await patch(gateway, sid, {"description": "still filtered"})
    assert kept["filter"] == "data.n == `2`"
    removed = await patch(gateway, sid, {"filter": None})
    assert removed["filter"] is None
    assert await delivered_to(gateway, await publish(gateway, {"n": 1})) == {sid}


@pytest.mark.parametrize(
    ("expression", "position", "words"),
    [
        ("data.productType ==", 19, "incomplete expression"),
        ("data.sku ! 'x'", 9, 'invalid token (token "!")'),
        ("data.[", 6, "incomplete expression"),
        ("data.sku == 'x", 12, "Unclosed ' delimiter"),
        ("startswith(data.sku, 'A')", 0, "unknown function startswith()"),
        ("data.x || length(data.a, data.b)", 10, "length() takes 1 arguments, not 2"),
        ("a" * 1025, None, "longer than 1024"),
        ("!" * 40 + "a", None, "deeper than 32"),
        ("abs(" * 33 + "a" + ")" * 33, None, "deeper than 32"),
        ("(" * 500 + "a" + ")" * 500, None, "deeper than 32"),
        ("   ", None, "empty"),
    ],
)
async def test_a_bad_filter_is_a_422_pointing_at_it(
    make_gateway: MakeGateway, expression: str, position: int | None, words: str
) -> None:
    """Syntax errors, unknown functions, wrong argument counts and expressions too long or too
    deep are 422 problems on `/filter` (with the column when there is one), on create and on
    update, and leave nothing behind (no subscription, the filter unchanged)."""
    gateway = await make_events_gateway(make_gateway)
    body = {"url": "http://127.0.0.1:9/x", "eventTypes": ["acme.done"], "filter": expression}
    created = await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth())
    problem = await created.json()
    if len(expression) > filters.MAX_LENGTH:  # the schema's maxLength answers first
        assert created.status == 422
        assert "/filter" in str(problem["errors"])
        return
    assert created.status == 422, problem
    assert problem["errors"][0]["location"] == "/filter"
    assert words in problem["errors"][0]["message"]
    assert problem.get("position") == position
    listed = await gateway.client.get("/v1/subscriptions", headers=gateway.auth())
    assert (await listed.json())["items"] == []
    existing = await subscribe(gateway, "http://127.0.0.1:9/x", "data.ok")
    url = f"/v1/subscriptions/{existing['id']}"
    updated = await gateway.client.patch(url, json={"filter": expression}, headers=gateway.auth())
    assert updated.status == 422
    assert (await updated.json())["errors"][0]["location"] == "/filter"
    after = await gateway.client.get(url, headers=gateway.auth())
    assert (await after.json())["filter"] == "data.ok"


async def test_an_evaluation_error_does_not_break_ingest(
    gateway: Gateway, receiver: Receiver, logs: GatewayLogs
) -> None:
    """A filter that fails on an event (`starts_with` given a number) does not match it, the
    event is recorded, the other subscriptions get it, and the failure is logged (with the
    subscription's id, not the data) and counted."""
    failing = await subscribe(gateway, receiver.url("failing"), "starts_with(data.sku, 'A')")
    other = await subscribe(gateway, receiver.url("other"), None)
    event_id = await publish(gateway, {"sku": 12345})
    [failed] = logs.events("subscription.filter_failed")
    assert failed["subscription_id"] == failing["id"]
    assert "12345" not in str(failed)  # the data stays out of the logs
    found = await gateway.client.get(f"/v1/events/{event_id}", headers=gateway.auth())
    assert found.status == 200
    assert await delivered_to(gateway, event_id) == {other["id"]}
    assert await delivered_to(gateway, await publish(gateway, {"sku": "A-1"})) == {
        failing["id"],
        other["id"],
    }
    metrics = await (await gateway.client.get("/metrics")).text()
    assert "gateway_subscription_filter_errors_total 1.0" in metrics


async def test_the_test_event_ignores_the_filter_and_redelivery_follows_it(
    gateway: Gateway, receiver: Receiver
) -> None:
    """sendTestEvent reaches a subscription whatever its filter; redelivering an event without
    a body queues it only to the subscriptions whose filter keeps it, to a named one anyway."""
    picky = await subscribe(gateway, receiver.url("picky"), "data.n == `1`", ["*"])
    sent = await gateway.client.post(
        f"/v1/subscriptions/{picky['id']}/test", headers=gateway.auth()
    )
    assert sent.status == 202
    assert await delivered_to(gateway, (await sent.json())["id"]) == {picky["id"]}
    other = await publish(gateway, {"n": 2})
    again = await gateway.client.post(f"/v1/events/{other}/redeliver", headers=gateway.auth())
    assert again.status == 202
    assert (await again.json())["deliveries"] == []
    named = await gateway.client.post(
        f"/v1/events/{other}/redeliver",
        json={"subscriptionId": picky["id"]},
        headers=gateway.auth(),
    )
    assert [d["subscriptionId"] for d in (await named.json())["deliveries"]] == [picky["id"]]


async def test_a_tenant_cannot_see_or_edit_anothers_filter(gateway: Gateway) -> None:
    """Tenant B gets 404 reading or patching tenant A's filtered subscription, which keeps its
    filter."""
    created = await subscribe(gateway, "http://127.0.0.1:9/x", "data.secretProject == 'x'")
    url = f"/v1/subscriptions/{created['id']}"
    theirs = gateway.auth(CALLER_KEY_B)
    assert (await gateway.client.get(url, headers=theirs)).status == 404
    edited = await gateway.client.patch(url, json={"filter": None}, headers=theirs)
    assert edited.status == 404
    listed = await (await gateway.client.get("/v1/subscriptions", headers=theirs)).json()
    assert listed["items"] == []
    mine = await (await gateway.client.get(url, headers=gateway.auth())).json()
    assert mine["filter"] == "data.secretProject == 'x'"


def test_truthiness_follows_jmespath() -> None:
    """False, null and empty strings, arrays and objects are false; 0 and the rest are true."""
    assert [filters.truthy(v) for v in (False, None, "", [], {})] == [False] * 5
    assert [filters.truthy(v) for v in (True, 0, 0.0, "x", [0], {"a": None})] == [True] * 6


def test_a_filter_is_compiled_once_per_text() -> None:
    """Evaluating the same filter on many events parses it once (the cache is by its text)."""
    filters.compiled.cache_clear()
    checker = filters.Filters()
    for n in range(50):
        checker.matches("sub_x", "data.n > `10`", {"data": {"n": n}})
    info = filters.compiled.cache_info()
    assert (info.misses, info.hits) == (1, 49)


def test_the_readme_examples_are_filters() -> None:
    """Every filter the README's section shows (its table's last column) passes the check."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Filtering what a subscription receives", 1)[1].split("\n#", 1)[0]
    examples = [
        re.sub(r"^`+ ?| ?`+$", "", line.rsplit("|", 2)[1].strip())
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith(("| receive", "| ---"))
    ]
    assert len(examples) == 5
    for example in examples:
        filters.check(example)
    assert filters.truthy(filters.compiled(examples[4]).search({"data": {"count": 4}}))


@pytest.mark.parametrize("limit", [1000, 2**14])
def test_nesting_is_refused_whatever_the_recursion_limit(limit: int) -> None:
    """Parentheses add no node to the tree: their depth is counted on the tokens, so a process
    with a higher recursion limit (mypy raises it to 16384) refuses them all the same."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        for expression in ("(" * 500 + "a" + ")" * 500, "[?" * 40 + "a" + "]" * 40):
            with pytest.raises(filters.FilterError, match="deeper than 32"):
                filters.check(expression)
        filters.check("(" * 32 + "a" + ")" * 32)
    finally:
        sys.setrecursionlimit(before)
