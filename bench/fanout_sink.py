"""Fan-out's sink case: deliveries per second to NATS JetStream through the nats sink plugin.

A private `nats-server -js` (Debian's, `make brokers`; the tests' `NatsServer`), a gateway of its
own (the real app, SQLite, the `fanout` configuration) with `fanout.SUBSCRIBERS` subscriptions, each
to a subject of its own stream (a stream de-duplicates by event id, and the subscribers get the
same events). The baseline, measured in the same run against the same server: one client
publishing as many messages of the same size straight to JetStream, each acknowledged, as many
in flight as the gateway's `[events] concurrency`: the rate a delivery cannot beat.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client
from nats.js.api import StreamConfig

from bench import fanout
from bench.common import process
from gateway.webhooks import signing
from tests.brokers import NatsServer, running

CONCURRENCY = 128  # fanout's [events] concurrency


async def _stored(client: Client) -> int:
    js = client.jetstream()
    counts = [(await js.stream_info(f"BENCH{n}")).state.messages for n in range(fanout.SUBSCRIBERS)]
    return sum(counts)


async def _wait_for(client: Client, count: int) -> float:
    while await _stored(client) < count:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def baseline_rate(client: Client, total: int) -> float:
    """Signed messages published straight to JetStream, each waited for its acknowledgement."""
    body = b'{"id":"evt_x","type":"acme.done","data":{}}'
    secret = signing.new_secret()
    js = client.jetstream()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def publish(n: int) -> None:
        headers = signing.headers([secret], f"evt_{n}", int(time.time()), body)
        async with gate:
            await js.publish("bench.base", body, headers={**headers, "Nats-Msg-Id": f"evt_{n}"})

    started = time.perf_counter()
    await asyncio.gather(*(publish(n) for n in range(total)))
    return total / (time.perf_counter() - started)


async def gateway_rate(
    http: aiohttp.ClientSession, gateway: str, client: Client, events: int
) -> float:
    """Callbacks as fast as they are accepted; deliveries/s until the last one was stored."""
    gate = asyncio.Semaphore(32)
    headers = {"Authorization": fanout.CALLBACK_SECRET}

    async def callback(n: int) -> None:
        async with (
            gate,
            http.post(f"{gateway}/callbacks/acme/bench/sink/{n}", headers=headers) as r,
        ):
            assert r.status < 300, await r.text()

    started = time.perf_counter()
    await asyncio.gather(*(callback(n) for n in range(events)))
    done = await _wait_for(client, events * fanout.SUBSCRIBERS)
    return events * fanout.SUBSCRIBERS / (done - started)


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    events = 100 if smoke else 2500  # fanout's
    config = workdir / "fanout-sink.toml"
    fanout.write_config(config, workdir, store_url=f"sqlite:///{workdir}/sink.db")
    env = {"BENCH_ACME_KEY": "bench-acme-key", "BENCH_CALLBACK_SECRET": fanout.CALLBACK_SECRET}
    with running(NatsServer("nats-server")) as server:
        client = await nats.connect(server.client_url)
        js = client.jetstream()
        await js.add_stream(StreamConfig(name="BASE", subjects=["bench.base"]))
        for n in range(fanout.SUBSCRIBERS):
            await js.add_stream(StreamConfig(name=f"BENCH{n}", subjects=[f"bench.sub{n}"]))
        base_rate = await baseline_rate(client, events * fanout.SUBSCRIBERS)
        async with (
            process(
                "tests.gateway_process", str(config), health="/healthz", env=env
            ) as gateway_process,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http,
        ):
            gateway = f"http://127.0.0.1:{gateway_process.port}"
            auth = {"Authorization": f"Bearer {fanout.CALLER_KEY}"}
            for n in range(fanout.SUBSCRIBERS):
                body = {"url": server.url(f"bench.sub{n}"), "eventTypes": ["*"]}
                async with http.post(f"{gateway}/v1/subscriptions", json=body, headers=auth) as r:
                    assert r.status == 201, await r.text()
            rate = await gateway_rate(http, gateway, client, events)
        await client.close()
    return {
        "sink_nats_deliveries_per_second": round(rate),
        "baseline_jetstream_publishes_per_second": round(base_rate),
        "sink_nats_deliveries_ratio": round(rate / base_rate, 3),
    }
