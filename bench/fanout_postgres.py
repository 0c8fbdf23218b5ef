"""Fan-out on PostgreSQL: the `fanout` measurements with one and with two gateway processes on one
database (the second one spread over by sending callbacks to each in turn).

A PostgreSQL server of the benchmark's own (Debian's binaries, `make postgres`), durable (fsync
on, as in production), on a free port; a fresh database per configuration. The baselines are
`fanout`'s, measured in the same run against the same receiver, so the figures are ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp

from bench import fanout
from bench.common import percentile, process
from tests.pg import PostgresServer, find_binaries

PROCESSES = (1, 2)
LATENCY_RATE = 200


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    events = 100 if smoke else 2500
    seconds = 0.5 if smoke else 5.0
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found: run `make postgres` as root")
    server = PostgresServer(binaries)
    env = {"BENCH_ACME_KEY": "bench-acme-key", "BENCH_CALLBACK_SECRET": fanout.CALLBACK_SECRET}
    results: dict[str, Any] = {}
    try:
        await asyncio.to_thread(server.start, durable=True)
        async with (
            process("bench.receiver", health="/stats") as receiver_process,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http,
        ):
            receiver = f"http://127.0.0.1:{receiver_process.port}"
            total = events * fanout.SUBSCRIBERS
            base_rate = await fanout.baseline_rate(http, receiver, total)
            base_p95 = percentile(
                await fanout.baseline_latency(http, receiver, LATENCY_RATE, seconds), 95
            )
            results["baseline_posts_per_second"] = round(base_rate)
            results["baseline_post_p95_ms"] = round(base_p95, 2)
            for count in PROCESSES:
                config = workdir / f"fanout-pg-{count}.toml"
                fanout.write_config(config, workdir, store_url=await server.create_database())
                async with contextlib.AsyncExitStack() as stack:
                    children = [
                        await stack.enter_async_context(
                            process(
                                "tests.gateway_process", str(config), health="/healthz", env=env
                            )
                        )
                        for _ in range(count)
                    ]
                    gateways = [f"http://127.0.0.1:{child.port}" for child in children]
                    await _subscribe(http, gateways[0], receiver)
                    rate, drain, _ = await fanout.gateway_rate(http, gateways, receiver, events)
                    lat = await fanout.latency(http, gateways, receiver, LATENCY_RATE, seconds)
                p95 = percentile(lat, 95)
                results[f"p{count}_deliveries_per_second"] = round(rate)
                results[f"p{count}_deliveries_ratio"] = round(rate / base_rate, 3)
                results[f"p{count}_backlog_deliveries_per_second"] = round(drain)
                results[f"p{count}_first_attempt_p95_ms"] = round(p95, 2)
                results[f"p{count}_first_attempt_p95_ratio"] = round(p95 / base_p95, 2)
    finally:
        await asyncio.to_thread(server.remove)
    results.update(events=events, subscribers=fanout.SUBSCRIBERS, processes=list(PROCESSES))
    return results


async def _subscribe(http: aiohttp.ClientSession, gateway: str, receiver: str) -> None:
    auth = {"Authorization": f"Bearer {fanout.CALLER_KEY}"}
    for n in range(fanout.SUBSCRIBERS):
        body = {"url": f"{receiver}/sub{n}", "eventTypes": ["*"]}
        async with http.post(f"{gateway}/v1/subscriptions", json=body, headers=auth) as r:
            assert r.status == 201, await r.text()
