"""Paged lists (listEvents, listSubscriptions): cursors are opaque, checked, and never a 5xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, strategies as st

from gateway import cursors, problems
from gateway.store.records import Position
from tests.conftest import CALLBACK_SECRET_A, Gateway

PROBLEM = "application/problem+json"
LISTS = ["/v1/events", "/v1/subscriptions"]

# Each was a 500 or an empty 200 page: digits too large for the stores' integers, a character
# str.isdigit() takes for a digit, garbage, and cursors of the old plain-number form.
HOSTILE_CURSORS = [
    "99999999999999999999999",
    "²",
    "٣",
    "zzzz",
    "0",
    "-1",
    "42",
    "ZXZlbnRzOjA",  # events:0
    "ZXZlbnRzOjk5OTk5OTk5OTk5OTk5OTk5OTk5",  # events:99999999999999999999
    "ZXZlbnRzOjE=",  # padded
    "ZXZlbnRzOjF",  # non-canonical trailing bits
    "%%%",
    "a" * 512,
]


async def subscribe(gateway: Gateway, n: int) -> str:
    response = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": f"http://127.0.0.1:9/hook{n}", "eventTypes": ["*"]},
        headers=gateway.auth(),
    )
    assert response.status == 201, await response.text()
    subscription_id: str = (await response.json())["id"]
    return subscription_id


async def callback(gateway: Gateway, path: str) -> None:
    response = await gateway.client.post(
        f"/callbacks/acme/tenant-a/{path}", headers={"Authorization": CALLBACK_SECRET_A}
    )
    assert response.status == 204, await response.text()


async def pages(gateway: Gateway, path: str, **query: str) -> list[list[dict[str, Any]]]:
    """Every page of a list, following nextCursor."""
    found: list[list[dict[str, Any]]] = []
    params = dict(query)
    while True:
        response = await gateway.client.get(path, params=params, headers=gateway.auth())
        assert response.status == 200, await response.text()
        body = await response.json()
        found.append(body["items"])
        if body["nextCursor"] is None:
            return found
        params["cursor"] = body["nextCursor"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
async def test_a_cursor_the_list_did_not_give_out_is_400_naming_it(
    gateway: Gateway, path: str, cursor: str
) -> None:
    """Any cursor that is not one this list handed out: 400 problem located at `cursor`, never a
    500 (numbers past 64 bits, "²") or an empty 200 page (garbage)."""
    await subscribe(gateway, 0)
    await callback(gateway, "done/1")
    response = await gateway.client.get(path, params={"cursor": cursor}, headers=gateway.auth())
    assert response.status == 400, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json()
    assert [e["location"] for e in body["errors"]] == ["cursor"]


async def test_one_lists_cursor_is_refused_by_the_other(gateway: Gateway) -> None:
    """A cursor names the list it pages: an events cursor given to listSubscriptions is a 400."""
    for n in range(3):
        await callback(gateway, f"done/{n}")
    response = await gateway.client.get("/v1/events", params={"limit": "1"}, headers=gateway.auth())
    cursor = (await response.json())["nextCursor"]
    assert cursor is not None
    refused = await gateway.client.get(
        "/v1/subscriptions", params={"cursor": cursor}, headers=gateway.auth()
    )
    assert refused.status == 400
    assert [e["location"] for e in (await refused.json())["errors"]] == ["cursor"]


async def test_events_page_newest_first_and_the_cursor_continues_backwards(
    gateway: Gateway,
) -> None:
    """listEvents is newest first (as the contract says); the pages together hold every event
    once, and events stored while paging do not shift the later pages."""
    for n in range(5):
        await callback(gateway, f"done/{n}")
    first = await gateway.client.get("/v1/events", params={"limit": "2"}, headers=gateway.auth())
    body = await first.json()
    await callback(gateway, "done/late")  # newer than everything: belongs on no later page
    rest = await pages(gateway, "/v1/events", limit="2", cursor=body["nextCursor"])
    paths = [e["data"]["path"] for page in [body["items"], *rest] for e in page]
    assert paths == [f"done/{n}" for n in (4, 3, 2, 1, 0)]
    assert [len(page) for page in rest] == [2, 1]


async def test_subscriptions_page_oldest_first(gateway: Gateway) -> None:
    """listSubscriptions is oldest first; the cursor walks every subscription once."""
    created = [await subscribe(gateway, n) for n in range(5)]
    found = await pages(gateway, "/v1/subscriptions", limit="2")
    assert [s["id"] for page in found for s in page] == created
    assert [len(page) for page in found] == [2, 2, 1]


@given(st.integers(min_value=1, max_value=cursors.MAX_POSITION))
def test_a_cursor_decodes_to_the_position_it_encodes(seq: int) -> None:
    """Every position the stores can hand out survives the round trip."""
    assert cursors.EVENTS.decode(cursors.EVENTS.encode(Position(seq))) == Position(seq)


@given(st.text(max_size=80) | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
def test_anything_else_decodes_to_a_400_or_is_a_real_cursor(raw: str) -> None:
    """Decoding never fails any other way: either a 400 naming `cursor`, or the text is exactly
    what encoding its position gives."""
    problem: problems.ProblemError | None = None
    try:
        position = cursors.SUBSCRIPTIONS.decode(raw)
    except problems.ProblemError as exc:
        problem = exc
    if problem is None:
        assert cursors.SUBSCRIPTIONS.encode(position) == raw
    else:
        assert problem.status == 400
        assert [e.location for e in problem.errors] == ["cursor"]
