"""After a subscriber's outage, through the API on both stores: its failed deliveries listed, events
found by time and by the resource they concern, and every failed delivery of a range queued again
by one bulk recovery that survives a restart. Every answer is checked against the contract."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import pytest

from gateway.state import RECOVERER, STORE
from gateway.values import Event
from tests.conftest import CALLER_KEY_B, Gateway, MakeGateway, eventually
from tests.subscribers import Receiver, callback, make_events_gateway, receiver, subscribe
from tests.test_recovery_store import failed_history

__all__ = ["receiver"]  # the fixture, for this module's tests


def iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def outage(gateway: Gateway, receiver: Receiver, count: int) -> tuple[str, list[str]]:
    """A subscriber down (503) for `count` callbacks, each given up after one retry: the
    subscription's id and the failed events' ids, oldest first."""
    subscription = await subscribe(gateway, receiver.url("down"), ["*"])
    receiver.answers["down"] = [(503, {})] * (2 * count)
    for n in range(count):
        await callback(gateway, f"outage/{n}")
    store = gateway.client.app[STORE]

    async def failed() -> list[str]:
        page = await store.list_subscription_deliveries(
            "tenant-a", subscription["id"], status="failed", since=None, until=None,
            after=None, limit=100,
        )  # fmt: skip
        return [d.event_id for d in page.items]

    async with asyncio.timeout(10):
        while len(found := await failed()) < count:  # noqa: ASYNC110 - polling the store
            await asyncio.sleep(0.02)
    return subscription["id"], found[::-1]


async def outage_gateway(make_gateway: MakeGateway, store_url: str) -> Gateway:
    return await make_events_gateway(
        make_gateway, retry_schedule=[0, 0.01], store_url=store_url, disable_after=86400
    )


async def test_a_subscriptions_failed_deliveries_are_listed_newest_first_by_page(
    make_gateway: MakeGateway, store_url: str, receiver: Receiver
) -> None:
    """`status=failed` lists the outage's deliveries newest first, each with its event's id and
    attempts, a page at a time; `since`/`until` bound them by when they were queued; another
    tenant's subscription (in any spelling) is 404, bad bounds and cursors 400."""
    gateway = await outage_gateway(make_gateway, store_url)
    started = time.time()
    subscription, events = await outage(gateway, receiver, 3)
    url = f"/v1/subscriptions/{subscription}/deliveries"
    first = await ok(
        await gateway.client.get(
            url, params={"status": "failed", "limit": 2}, headers=gateway.auth()
        )
    )
    assert [d["eventId"] for d in first["items"]] == events[::-1][:2]
    assert all(len(d["attempts"]) == 2 for d in first["items"])
    rest = await ok(
        await gateway.client.get(
            url,
            params={"status": "failed", "limit": 2, "cursor": first["nextCursor"]},
            headers=gateway.auth(),
        )
    )
    assert [d["eventId"] for d in rest["items"]] == events[:1]
    assert rest["nextCursor"] is None
    event = await ok(
        await gateway.client.get(
            f"/v1/events/{first['items'][0]['eventId']}", headers=gateway.auth()
        )
    )
    assert event["id"] == events[-1]
    none_yet = {"since": iso(started - 60), "until": iso(started)}
    empty = await ok(await gateway.client.get(url, params=none_yet, headers=gateway.auth()))
    assert empty["items"] == []
    succeeded = await ok(
        await gateway.client.get(url, params={"status": "succeeded"}, headers=gateway.auth())
    )
    assert succeeded["items"] == []

    for other in (
        gateway.client.get(url, headers=gateway.auth(CALLER_KEY_B)),
        gateway.client.get(url.replace(subscription, subscription.upper()), headers=gateway.auth()),
    ):
        assert (await other).status == 404
    for params, location in (
        ({"since": "2026-03-02T09:00:00"}, "since"),
        ({"since": iso(started), "until": iso(started - 1)}, "until"),
        ({"cursor": "ZXZlbnRzOjE"}, "cursor"),
        ({"status": "lost"}, "status"),
    ):
        bad = await gateway.client.get(url, params=params, headers=gateway.auth())
        assert bad.status == 400, params
        assert (await bad.json())["errors"][0]["location"] == location


async def test_events_are_found_by_time_and_by_the_resource_they_concern(
    make_gateway: MakeGateway, store_url: str
) -> None:
    """`since`/`until` keep the events received in the range; `productId` and `userId` those
    whose data names that product or user; filters combine and page with their cursor."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url)
    store = gateway.client.app[STORE]
    recorded = []
    for n, data in enumerate(
        [{"productId": "p-1"}, {"userId": "u-1"}, {"productId": "p-2"}, {"productId": "p-1"}]
    ):
        event = Event.new("acme.done", {**data, "n": n}, tenant="tenant-a", backend="acme")
        assert await store.record_event(event, dedupe_window=0)
        recorded.append((time.time(), event.id))
        await asyncio.sleep(0.01)
    other = Event.new("acme.done", {"productId": "p-1"}, tenant="tenant-b", backend="acme")
    await store.record_event(other, dedupe_window=0)

    async def listed(key: str = gateway.auth()["Authorization"], **params: Any) -> list[str]:
        response = await gateway.client.get(
            "/v1/events", params=params, headers={"Authorization": key}
        )
        return [e["id"] for e in (await ok(response))["items"]]

    ids = [event_id for _, event_id in recorded]
    assert await listed(productId="p-1") == [ids[3], ids[0]]
    assert await listed(userId="u-1") == [ids[1]]
    assert await listed(userId="U-1") == []
    assert await listed(productId="p-1", type="acme.other") == []
    middle = {"since": iso(recorded[0][0]), "until": iso(recorded[2][0])}
    assert await listed(**middle) == [ids[2], ids[1]]
    assert await listed(productId="p-1", **middle) == []
    assert await listed(since=iso(time.time() + 60)) == []
    page = await ok(
        await gateway.client.get(
            "/v1/events", params={"productId": "p-1", "limit": 1}, headers=gateway.auth()
        )
    )
    more = {"productId": "p-1", "limit": 1, "cursor": page["nextCursor"]}
    assert await listed(**more) == [ids[0]]
    assert await listed(f"Bearer {CALLER_KEY_B}", productId="p-1") == [other.id]
    bad = await gateway.client.get(
        "/v1/events", params={"until": "2026-03-02T25:00:00Z"}, headers=gateway.auth()
    )
    assert bad.status == 400


async def recovered(gateway: Gateway, location: str, within: float = 10) -> Any:
    """The recovery at `location` once it is no longer running."""
    async with asyncio.timeout(within):
        while True:
            recovery = await ok(await gateway.client.get(location, headers=gateway.auth()))
            if recovery["status"] != "running":
                return recovery
            await asyncio.sleep(0.02)


async def test_a_recovery_queues_every_failed_delivery_of_the_range_once(
    make_gateway: MakeGateway, store_url: str, receiver: Receiver
) -> None:
    """After the outage, one POST queues each failed delivery again (the subscriber now gets every
    event), shows its progress at its Location, marks each failed delivery with the new one's id;
    the same request while it runs gets it back; a second recovery of the range queues nothing
    (each was queued once); another tenant gets 404."""
    gateway = await outage_gateway(make_gateway, store_url)
    since = time.time()
    subscription, events = await outage(gateway, receiver, 5)
    url = f"/v1/subscriptions/{subscription}/recover"
    assert (
        await gateway.client.post(
            url, json={"since": iso(since)}, headers=gateway.auth(CALLER_KEY_B)
        )
    ).status == 404
    response = await gateway.client.post(url, json={"since": iso(since)}, headers=gateway.auth())
    started = await ok(response, 202)
    assert started["status"] in {"running", "done"}
    location = response.headers["Location"]
    assert location == f"/v1/subscriptions/{subscription}/recoveries/{started['id']}"
    finished = await recovered(gateway, location)
    assert finished["status"] == "done"
    assert finished["requeued"] == finished["total"] == 5
    assert finished["finishedAt"] is not None

    def sent_again() -> set[str]:
        return {d["headers"]["webhook-id"] for d in receiver.bodies("down")[10:]}

    await eventually(lambda: sent_again() == set(events), within=10)
    listing = f"/v1/subscriptions/{subscription}/deliveries"
    failed = await ok(
        await gateway.client.get(listing, params={"status": "failed"}, headers=gateway.auth())
    )
    assert all("requeuedAs" in d for d in failed["items"])
    again = await ok(
        await gateway.client.post(url, json={"since": iso(since)}, headers=gateway.auth()), 202
    )
    assert again["id"] != started["id"]
    assert (
        await recovered(gateway, response.headers["Location"].replace(started["id"], again["id"]))
    )["requeued"] == 0
    assert len(receiver.bodies("down")) == 15
    other = await gateway.client.get(location, headers=gateway.auth(CALLER_KEY_B))
    assert other.status == 404


async def test_the_same_recovery_request_while_one_runs_gets_it_back(
    make_gateway: MakeGateway, store_url: str
) -> None:
    """Without a process carrying it out (its recoverer stopped), a recovery stays running: the
    same request gets it back (202, same id), another range 409 naming it; bad ranges 422, a
    disabled subscription 409."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url)
    await gateway.client.app[RECOVERER].stop()
    subscription = await subscribe(gateway, "http://127.0.0.1:9/hook", ["*"])
    url = f"/v1/subscriptions/{subscription['id']}/recover"
    since = iso(time.time() - 3600)
    first = await ok(
        await gateway.client.post(url, json={"since": since}, headers=gateway.auth()), 202
    )
    same = await ok(
        await gateway.client.post(url, json={"since": since}, headers=gateway.auth()), 202
    )
    assert same["id"] == first["id"]
    assert same["status"] == "running"
    later = iso(time.time() + 3600)  # read as now: the same request made a moment later
    again = await ok(
        await gateway.client.post(
            url, json={"since": since, "until": later}, headers=gateway.auth()
        ),
        202,
    )
    assert again["id"] == first["id"]
    other = await gateway.client.post(
        url, json={"since": iso(time.time() - 60)}, headers=gateway.auth()
    )
    assert other.status == 409
    assert (await other.json())["recoveryId"] == first["id"]
    for body, location in (
        ({"since": since, "until": iso(time.time() - 7200)}, "/until"),
        ({"since": "2026-03-02T09:00:00"}, "/since"),
        ({"since": "yesterday"}, "/since"),
        ({}, "/since"),
    ):
        bad = await gateway.client.post(url, json=body, headers=gateway.auth())
        assert bad.status == 422, body
        assert (await bad.json())["errors"][0]["location"] == location, body
    await gateway.client.patch(
        f"/v1/subscriptions/{subscription['id']}", json={"enabled": False}, headers=gateway.auth()
    )
    disabled = await gateway.client.post(url, json={"since": since}, headers=gateway.auth())
    assert disabled.status == 409
    assert (await disabled.json())["type"].endswith("subscription-disabled")


async def test_a_recovery_left_by_a_stopped_process_is_continued_by_the_next(
    make_gateway: MakeGateway, store_url: str, receiver: Receiver
) -> None:
    """A recovery whose process died holding its lease (after one batch) is carried on to its end
    by the next gateway started on the store, from where it stopped: nothing is queued twice."""
    gateway = await outage_gateway(make_gateway, store_url)
    since = time.time()
    subscription, events = await outage(gateway, receiver, 4)
    store = gateway.client.app[STORE]
    started = await store.start_recovery(
        "tenant-a", subscription, since=since, until=time.time(), now=time.time()
    )
    assert started is not None
    recovery, _ = started
    await gateway.client.app[RECOVERER].stop()  # this process's recoverer never saw it
    claimed = await store.claim_recovery(owner="dead", now=time.time(), lease=0.2)
    assert claimed is not None
    assert claimed.id == recovery.id
    step = await store.recover_step(recovery.id, owner="dead", now=time.time(), lease=0.2, batch=3)
    assert step is not None
    assert (step.requeued, step.status) == (3, "running")
    await gateway.client.close()

    restarted = await outage_gateway(make_gateway, store_url)
    location = f"/v1/subscriptions/{subscription}/recoveries/{recovery.id}"
    finished = await recovered(restarted, location)
    assert finished["status"] == "done"
    assert finished["requeued"] == finished["total"] == 4
    page = await restarted.client.app[STORE].list_subscription_deliveries(
        "tenant-a", subscription, status=None, since=None, until=None, after=None, limit=100
    )
    assert sorted(
        d.event_id for d in page.items if d.requeued_as is None and d.status != "failed"
    ) == sorted(events)


@pytest.mark.parametrize("change", ["disable", "delete"])
async def test_a_recovery_ends_failed_when_its_subscription_goes(store: Any, change: str) -> None:
    """Disabled or deleted while its recovery runs: the next batch ends it failed, saying why."""
    subscription = await failed_history(store, 3)
    started = await store.start_recovery(
        "t", subscription, since=0, until=time.time(), now=time.time()
    )
    recovery, _ = started
    if change == "disable":
        await store.disable_subscription(subscription, "gone quiet")
    else:
        await store.delete_subscription("t", subscription)
    assert await store.claim_recovery(owner="me", now=time.time(), lease=5)
    ended = await store.recover_step(recovery.id, owner="me", now=time.time(), lease=5, batch=10)
    assert ended.status == "failed"
    assert ("disabled" if change == "disable" else "deleted") in ended.reason


async def test_recoveries_are_looked_for_no_more_often_than_idle_workers_look(
    make_gateway: MakeGateway,
) -> None:
    """Idle, the recoverer looks for recoveries every 5 s, or every `[events] poll_interval` when
    that is longer: an operator who made idle polling rare (an hour, as the instruction benchmark
    does) made it rare for both."""
    often = await make_events_gateway(make_gateway)  # poll_interval 0.02
    rarely = await make_gateway(events={"poll_interval": 3600.0})
    assert often.client.app[RECOVERER].poll == 5.0
    assert rarely.client.app[RECOVERER].poll == 3600.0
