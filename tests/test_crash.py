"""Crash safety: a gateway killed with SIGKILL mid fan-out loses nothing once restarted."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from tests.conftest import (
    ACME_KEY_A,
    CALLBACK_SECRET_A,
    CALLER_KEY_A,
    REPORTS,
    eventually,
    gateway_config as base_config,
)

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 300
SUBSCRIBERS = ("alpha", "beta", "gamma")


def write_config(path: Path, tmp_path: Path, port: int) -> None:
    raw = base_config(
        tmp_path,
        "http://127.0.0.1:9",  # the Acme upstream is not called: callbacks only
        events={"lease": 2.0, "poll_interval": 0.1, "jitter": 0},
    )
    raw["server"]["public_url"] = f"http://127.0.0.1:{port}"
    lines = [
        f'[store]\nurl = "{raw["store"]["url"]}"',
        "[events]\nlease = 2.0\npoll_interval = 0.1\njitter = 0.0\nper_subscription = 4",
        '[log]\nlevel = "warning"',
    ]
    for tenant in raw["tenants"][:1]:
        acme = tenant["backends"]["acme"]
        lines.append(
            f'[[tenants]]\nid = "{tenant["id"]}"\nkeys = {tenant["keys"]!r}\n'.replace("'", '"')
            + f'[tenants.backends.acme]\nbase_url = "{acme["base_url"]}"\n'
            f'api_key = "{acme["api_key"]}"\ncallback_secret = "{acme["callback_secret"]}"'
        )
    path.write_text("\n\n".join(lines) + "\n")


async def start(config: Path, port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "TEST_ACME_KEY_A": ACME_KEY_A, "TEST_CALLBACK_SECRET_A": CALLBACK_SECRET_A}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gateway_process", str(config), str(port), cwd=ROOT, env=env
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError("the gateway process did not start")


@pytest.mark.timeout(120)
async def test_sigkill_mid_fan_out_loses_nothing(tmp_path: Path, aiohttp_server: Any) -> None:
    """Every event acknowledged before the kill reaches every subscriber after the restart."""
    received: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in SUBSCRIBERS}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.02)  # a subscriber doing some work: the queue builds up
        received[request.match_info["name"]][request.headers["webhook-id"]] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", hook)
    receiver = await aiohttp_server(app)
    port = unused_port()
    config = tmp_path / "gateway.toml"
    write_config(config, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {CALLER_KEY_A}"}

    process = await start(config, port)
    try:
        async with aiohttp.ClientSession(base) as http:
            for name in SUBSCRIBERS:
                body = {"url": str(receiver.make_url(f"/{name}")), "eventTypes": ["*"]}
                async with http.post("/v1/subscriptions", json=body, headers=auth) as response:
                    assert response.status == 201, await response.text()
            gate = asyncio.Semaphore(32)

            async def callback(n: int) -> int:
                async with (
                    gate,
                    http.post(
                        f"/callbacks/acme/tenant-a/crash/{n}",
                        headers={"Authorization": CALLBACK_SECRET_A},
                    ) as response,
                ):
                    return response.status

            statuses = await asyncio.gather(*(callback(n) for n in range(EVENTS)))
            assert statuses == [204] * EVENTS  # each one committed before it was acknowledged
            acknowledged = EVENTS
        await eventually(lambda: sum(sum(c.values()) for c in received.values()) > 100)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    delivered_before = sum(sum(c.values()) for c in received.values())
    assert delivered_before < EVENTS * len(SUBSCRIBERS), "the kill came too late to prove anything"

    process = await start(config, port)
    try:
        await eventually(lambda: all(len(c) == acknowledged for c in received.values()), within=60)
    finally:
        process.terminate()
        await process.wait()
    duplicates = sum(n - 1 for c in received.values() for n in c.values() if n > 1)
    REPORTS.append(
        f"crash test: {acknowledged} events x {len(SUBSCRIBERS)} subscribers; killed after "
        f"{delivered_before} deliveries; all delivered after restart; {duplicates} duplicates"
    )
    assert all(set(c) == set(received["alpha"]) for c in received.values())
