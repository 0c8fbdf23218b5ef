"""Throttling (issue 18): a subscription's `maxPerSecond` (a token bucket shared by every process
on the database) and a subscriber's 429 holding the whole subscription. The real app on each store
and real subscribers on loopback; two real gateway processes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.store.throttle import burst
from tests.conftest import REPORTS, Gateway, MakeGateway, eventually
from tests.subscribers import Receiver, callback, make_events_gateway, receiver
from tests.test_replicas import AUTH, CALLBACK_AUTH, replica, succeeded_attempts, write_config

__all__ = ["receiver"]  # the fixture, for this module's tests
TOLERANCE = 0.15  # of the span a rate gives a burst of events


def times(receiver: Receiver, name: str) -> list[float]:
    """When each request to `name` arrived (monotonic seconds)."""
    return [got["at"] for got in receiver.bodies(name)]


async def subscribe(gateway: Gateway, url: str, **fields: Any) -> Any:
    body = {"url": url, "eventTypes": ["*"], **fields}
    response = await gateway.client.post("/v1/subscriptions", json=body, headers=gateway.auth())
    assert response.status == 201, await response.text()
    return await response.json()


def busiest_second(times: list[float]) -> int:
    """The most arrivals within any one second."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def check_rate(times: list[float], rate: float) -> float:
    """Assert that `times` (one burst's arrivals) kept to `rate` within the tolerance; the span."""
    span = times[-1] - times[0]
    expected = (len(times) - burst(rate)) / rate  # the bucket's first burst goes at once
    assert abs(span - expected) <= TOLERANCE * expected, (span, expected)
    assert busiest_second(times) <= rate + burst(rate)
    return span


async def test_max_per_second_is_honoured_over_a_burst(
    make_gateway: MakeGateway, receiver: Receiver, store_url: str
) -> None:
    """25 events to a subscription at 5/s: the first 5 (the bucket) at once, the other 20 over
    4 s (± 15 %), never more than 10 within a second; an unthrottled subscription of the same
    events gets them all at once."""
    gateway = await make_events_gateway(make_gateway, store_url=store_url)
    throttled = await subscribe(gateway, receiver.url("slow"), maxPerSecond=5)
    assert throttled["maxPerSecond"] == 5
    assert throttled["throttledUntil"] is None
    await subscribe(gateway, receiver.url("free"))
    events = 25
    for n in range(events):
        await callback(gateway, f"throttle/{n}")
    await eventually(lambda: len(times(receiver, "free")) == events)
    free = times(receiver, "free")
    assert free[-1] - free[0] < 1.0
    await eventually(lambda: len(times(receiver, "slow")) == events, within=10)
    span = check_rate(times(receiver, "slow"), 5)
    REPORTS.append(
        f"throttle ({store_url.partition(':')[0]}): {events} events at maxPerSecond 5 took"
        f" {span:.2f} s (expected {(events - 5) / 5:.2f} s ± {TOLERANCE:.0%}); unthrottled"
        f" {free[-1] - free[0]:.2f} s"
    )


async def test_a_429_with_retry_after_holds_the_whole_subscription(
    make_gateway: MakeGateway, receiver: Receiver, store_url: str
) -> None:
    """A subscriber answers 429 with Retry-After: 2: none of its subscription's deliveries (the
    one answered nor the events after it) is sent for those 2 s, and answers show
    `throttledUntil` meanwhile; another subscription of the same events gets them at once."""
    gateway = await make_events_gateway(
        make_gateway, store_url=store_url, retry_schedule=[0, 0.05, 0.05, 0.05]
    )
    held = await subscribe(gateway, receiver.url("held"))
    await subscribe(gateway, receiver.url("other"))
    receiver.answers["held"] = [(429, {"Retry-After": "2"})]
    await callback(gateway, "held/0")
    await eventually(lambda: len(times(receiver, "held")) == 1)
    refused_at = times(receiver, "held")[0]
    url = f"/v1/subscriptions/{held['id']}"

    async def throttled_until() -> Any:
        return (await (await gateway.client.get(url, headers=gateway.auth())).json())[
            "throttledUntil"
        ]

    for _ in range(100):  # the 429's outcome is written in the next batch
        if await throttled_until() is not None:
            break
        await asyncio.sleep(0.02)
    assert await throttled_until() is not None
    for n in range(1, 4):
        await callback(gateway, f"held/{n}")
    await eventually(lambda: len(times(receiver, "other")) == 4)
    assert max(times(receiver, "other")) < refused_at + 1.5  # flowed while the other waited
    await eventually(lambda: len(times(receiver, "held")) == 5, within=5)
    later = times(receiver, "held")[1:]
    assert min(later) >= refused_at + 1.95, [t - refused_at for t in later]
    assert max(later) < refused_at + 3.0
    assert await throttled_until() is None


async def test_max_per_second_is_set_changed_and_removed(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    """maxPerSecond on create, PATCH keeping it when absent and removing it with null; a rate
    outside 0.1-10000 is a 422 problem naming /maxPerSecond, and stores nothing."""
    gateway = await make_events_gateway(make_gateway)
    created = await subscribe(gateway, receiver.url("x"), maxPerSecond=2.5)
    url = f"/v1/subscriptions/{created['id']}"
    kept = await gateway.client.patch(url, json={"description": "d"}, headers=gateway.auth())
    assert (await kept.json())["maxPerSecond"] == 2.5
    changed = await gateway.client.patch(url, json={"maxPerSecond": 100}, headers=gateway.auth())
    assert (await changed.json())["maxPerSecond"] == 100
    removed = await gateway.client.patch(url, json={"maxPerSecond": None}, headers=gateway.auth())
    assert (await removed.json())["maxPerSecond"] is None
    for wrong in (0.05, 20000, "5"):
        refused = await gateway.client.post(
            "/v1/subscriptions",
            json={"url": receiver.url("x"), "eventTypes": ["*"], "maxPerSecond": wrong},
            headers=gateway.auth(),
        )
        assert refused.status == 422
        assert (await refused.json())["errors"][0]["location"] == "/maxPerSecond"
        patched = await gateway.client.patch(
            url, json={"maxPerSecond": wrong}, headers=gateway.auth()
        )
        assert patched.status == 422
    listed = await (await gateway.client.get("/v1/subscriptions", headers=gateway.auth())).json()
    assert [s["maxPerSecond"] for s in listed["items"]] == [None]


@pytest.mark.timeout(120)
async def test_two_processes_share_one_bucket(
    tmp_path: Path, pg_url: str, receiver: Receiver
) -> None:
    """Two gateway processes on one PostgreSQL database deliver 40 events to a subscription at
    10/s: both send some, and together they keep to the rate (the first 10 at once, the other 30
    over 3 s ± 15 %), not twice it."""
    config = write_config(tmp_path / "gateway.toml", lease=30.0, poll_interval=0.05)
    events, rate = 40, 10
    async with replica(config, pg_url) as (a, _), replica(config, pg_url) as (b, _):
        async with aiohttp.ClientSession() as http:
            body = {"url": receiver.url("shared"), "eventTypes": ["*"], "maxPerSecond": rate}
            async with http.post(f"{a}/v1/subscriptions", json=body, headers=AUTH) as created:
                assert created.status == 201, await created.text()
            for n in range(events):
                base = (a, b)[n % 2]
                url = f"{base}/callbacks/acme/tenant-a/shared/{n}"
                async with http.post(url, headers=CALLBACK_AUTH) as response:
                    assert response.status == 204
        await eventually(lambda: len(times(receiver, "shared")) == events, within=20)
        by_a, by_b = await succeeded_attempts(a), await succeeded_attempts(b)
    assert by_a > 0, (by_a, by_b)
    assert by_b > 0, (by_a, by_b)
    span = check_rate(times(receiver, "shared"), rate)
    REPORTS.append(
        f"throttle across 2 processes (postgresql): {events} events at maxPerSecond {rate} took"
        f" {span:.2f} s (expected {(events - rate) / rate:.2f} s ± {TOLERANCE:.0%}),"
        f" {by_a:.0f} sent by one process and {by_b:.0f} by the other"
    )
