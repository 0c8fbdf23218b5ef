"""Fan-out: durable, signed deliveries per second, and callback-to-first-attempt latency.

Three processes: the gateway (the real app, SQLite, with the Acme test backend for callbacks),
a fast receiver (`bench.receiver`), and this one sending callbacks. Baselines, measured in the
same run against the same receiver: plain POSTs of a signed body from one aiohttp client (no
store, no queue): the rate and latency a delivery cannot beat.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import percentile, process
from gateway.tenants import digest_key
from gateway.webhooks import signing

CALLER_KEY = "gwk_bench-caller-key"
CALLBACK_SECRET = "bench-callback-secret"
SUBSCRIBERS = 4
# BENCH_FANOUT_FILTERED=N: N of the subscribers have a filter (gateway.webhooks.filters) that keeps
# every event of the bench, so the deliveries are the same and the figures show the filters' cost.
FILTER = "starts_with(data.path, 'rate/') || starts_with(data.path, 'lat/')"


def write_config(path: Path, data: Path, store_url: str | None = None) -> None:
    path.write_text(
        f"""
[store]
url = "{store_url or f"sqlite:///{data}/bench.db"}"

[log]
level = "warning"

[events]
concurrency = 128
per_subscription = 32
poll_interval = 0.05

[[tenants]]
id = "bench"
keys = ["{digest_key(CALLER_KEY)}"]

[tenants.backends.acme]
base_url = "http://127.0.0.1:9"
api_key = "env:BENCH_ACME_KEY"
callback_secret = "env:BENCH_CALLBACK_SECRET"
"""
    )


async def _stats(http: aiohttp.ClientSession, receiver: str) -> dict[str, Any]:
    async with http.get(f"{receiver}/stats") as response:
        stats: dict[str, Any] = await response.json()
        return stats


async def wait_for(http: aiohttp.ClientSession, receiver: str, count: int) -> float:
    """When the receiver has got `count` attempts (polled: it is another process)."""
    while (await _stats(http, receiver))["count"] < count:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def baseline_rate(http: aiohttp.ClientSession, receiver: str, total: int) -> float:
    """Signed POSTs straight to the receiver at the gateway's concurrency."""
    body = b'{"id":"evt_x","type":"acme.done","data":{}}'
    secret = signing.new_secret()
    gate = asyncio.Semaphore(128)

    async def post(n: int) -> None:
        headers = signing.headers([secret], f"evt_{n}", int(time.time()), body)
        async with gate, http.post(f"{receiver}/base", data=body, headers=headers) as r:
            await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(post(n) for n in range(total)))
    return total / (time.perf_counter() - started)


async def gateway_rate(
    http: aiohttp.ClientSession, gateway: str | Sequence[str], receiver: str, events: int
) -> tuple[float, float, float]:
    """Callbacks as fast as they are accepted (spread over the gateways, when several);
    deliveries/s until the last one arrived (overall, and while draining the backlog once
    ingestion ended), and callbacks ingested/s."""
    await http.post(f"{receiver}/reset")
    gate = asyncio.Semaphore(32)
    headers = {"Authorization": CALLBACK_SECRET}
    gateways = [gateway] if isinstance(gateway, str) else gateway

    async def callback(n: int) -> None:
        url = f"{gateways[n % len(gateways)]}/callbacks/acme/bench/rate/{n}"
        async with gate, http.post(url, headers=headers) as r:
            assert r.status < 300, await r.text()

    started = time.perf_counter()
    await asyncio.gather(*(callback(n) for n in range(events)))
    ingested = time.perf_counter()
    backlog = events * SUBSCRIBERS - (await _stats(http, receiver))["count"]
    done = await wait_for(http, receiver, events * SUBSCRIBERS)
    overall = events * SUBSCRIBERS / (done - started)
    return overall, backlog / (done - ingested), events / (ingested - started)


async def latency(
    http: aiohttp.ClientSession,
    gateway: str | Sequence[str],
    receiver: str,
    rate: int,
    seconds: float,
) -> list[float]:
    """Callbacks at a steady rate (spread over the gateways, when several); ms from each
    callback's sending to each first attempt."""
    await http.post(f"{receiver}/reset")
    headers = {"Authorization": CALLBACK_SECRET}
    count = int(rate * seconds)
    tasks = []
    gateways = [gateway] if isinstance(gateway, str) else gateway

    async def callback(n: int) -> None:
        url = f"{gateways[n % len(gateways)]}/callbacks/acme/bench/lat/{n}/{time.time():.6f}"
        async with http.post(url, headers=headers) as r:
            assert r.status < 300, await r.text()

    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(callback(n)))
    await asyncio.gather(*tasks)
    await wait_for(http, receiver, count * SUBSCRIBERS)
    first = (await _stats(http, receiver))["first"].values()
    return [(arrived - float(sent)) * 1000 for arrived, sent in first]


async def baseline_latency(
    http: aiohttp.ClientSession, receiver: str, rate: int, seconds: float
) -> list[float]:
    """The same rate of signed POSTs straight to the receiver: their round trips, in ms."""
    body = b'{"id":"evt_x","type":"acme.done","data":{}}'
    secret = signing.new_secret()
    results: list[float] = []

    async def post(n: int) -> None:
        headers = signing.headers([secret], f"evt_{n}", int(time.time()), body)
        sent = time.perf_counter()
        async with http.post(f"{receiver}/base", data=body, headers=headers) as r:
            await r.read()
        results.append((time.perf_counter() - sent) * 1000)

    tasks = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(post(n)))
    await asyncio.gather(*tasks)
    return results


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    events = 100 if smoke else 2500
    seconds = 0.5 if smoke else 5.0
    config = workdir / "fanout.toml"
    write_config(config, workdir)
    env = {"BENCH_ACME_KEY": "bench-acme-key", "BENCH_CALLBACK_SECRET": CALLBACK_SECRET}
    async with (
        process("bench.receiver", health="/stats") as receiver_process,
        process(
            "tests.gateway_process", str(config), health="/healthz", env=env
        ) as gateway_process,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http,
    ):
        gateway = f"http://127.0.0.1:{gateway_process.port}"
        receiver = f"http://127.0.0.1:{receiver_process.port}"
        auth = {"Authorization": f"Bearer {CALLER_KEY}"}
        filtered = int(os.environ.get("BENCH_FANOUT_FILTERED", "0"))
        for n in range(SUBSCRIBERS):
            body = {"url": f"{receiver}/sub{n}", "eventTypes": ["*"]}
            if n < filtered:
                body["filter"] = FILTER
            async with http.post(f"{gateway}/v1/subscriptions", json=body, headers=auth) as r:
                assert r.status == 201, await r.text()
        base_rate = await baseline_rate(http, receiver, events * SUBSCRIBERS)
        rate, drain_rate, ingest_rate = await gateway_rate(http, gateway, receiver, events)
        base_lat = await baseline_latency(http, receiver, 200, seconds)
        lat = await latency(http, gateway, receiver, 200, seconds)
    p95, base_p95 = percentile(lat, 95), percentile(base_lat, 95)
    return {
        "deliveries_per_second": round(rate),
        "baseline_posts_per_second": round(base_rate),
        "deliveries_ratio": round(rate / base_rate, 3),
        "backlog_deliveries_per_second": round(drain_rate),
        "callbacks_ingested_per_second": round(ingest_rate),
        "first_attempt_p50_ms": round(percentile(lat, 50), 2),
        "first_attempt_p95_ms": round(p95, 2),
        "baseline_post_p95_ms": round(base_p95, 2),
        "first_attempt_p95_ratio": round(p95 / base_p95, 2),
        "events": events,
        "subscribers": SUBSCRIBERS,
        "filtered_subscribers": filtered,
        "latency_rate_per_second": 200,
        "targets": {"deliveries_per_second": ">= 2000", "first_attempt_p95_ms": "< 50"},
    }
