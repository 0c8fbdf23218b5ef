"""The work between a callback and its first attempts, in instructions: what one callback fanned out
to `fanout.SUBSCRIBERS` subscribers costs the gateway's process (the request, the event's write,
the claim, the signed attempts, their outcomes written), counted by valgrind (callgrind).

`python -m bench fanout`'s first-attempt p95 swings tenfold from run to run on a shared machine:
it measures a queue, which grows whenever the machine's other work leaves the gateway less than
the 800 deliveries a second it is offered. A count does not move with the load. Callbacks go one
at a time, each awaited until all its first attempts arrived, FEW then MANY in two runs; the
difference over the extra callbacks leaves start-up and shut-down out. The workers poll once an
hour: every delivery must go out because something woke the worker (a callback whose delivery
waited for the poll would hang the run, and fails it).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from bench import fanout
from bench.common import process

_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)
DELIVERED_WITHIN = 120.0  # seconds for one callback's attempts, under valgrind on a loaded machine


async def _instructions(workdir: Path, callbacks: int) -> int:
    """User-space instructions of one whole gateway run serving `callbacks` callbacks."""
    data = workdir / f"run-{callbacks}"
    data.mkdir()
    config = data / "fanout.toml"
    fanout.write_config(config, data)
    config.write_text(config.read_text().replace("poll_interval = 0.05", "poll_interval = 3600.0"))
    out = data / "callgrind.out"
    env = {
        "BENCH_ACME_KEY": "bench-acme-key",
        "BENCH_CALLBACK_SECRET": fanout.CALLBACK_SECRET,
        "PYTHONHASHSEED": "0",  # the same dict layouts in every run
    }
    async with (
        process("bench.receiver", health="/stats") as receiver_process,
        process(
            "tests.gateway_process",
            str(config),
            health="/healthz",
            env=env,
            wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
            start_seconds=900,  # under valgrind, on a loaded machine: minutes
            log=data / "gateway.log",
        ) as gateway_process,
        aiohttp.ClientSession() as http,
    ):
        gateway = f"http://127.0.0.1:{gateway_process.port}"
        receiver = f"http://127.0.0.1:{receiver_process.port}"
        auth = {"Authorization": f"Bearer {fanout.CALLER_KEY}"}
        for n in range(fanout.SUBSCRIBERS):
            body = {"url": f"{receiver}/sub{n}", "eventTypes": ["*"]}
            async with http.post(f"{gateway}/v1/subscriptions", json=body, headers=auth) as r:
                assert r.status == 201, await r.text()
        headers = {"Authorization": fanout.CALLBACK_SECRET}
        for n in range(callbacks):
            async with http.post(f"{gateway}/callbacks/acme/bench/one/{n}", headers=headers) as r:
                assert r.status < 300, await r.text()
            expected = (n + 1) * fanout.SUBSCRIBERS
            async with asyncio.timeout(DELIVERED_WITHIN):
                await fanout.wait_for(http, receiver, expected)
        await asyncio.sleep(1.0)  # the last outcomes written (under valgrind: slowly)
    # The process has exited (SIGTERM) and callgrind has written its totals.
    return max(int(n) for n in _TOTALS.findall(out.read_text(errors="replace")))


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    if not shutil.which("valgrind"):
        raise RuntimeError("this benchmark needs valgrind: run `make bench`")
    few, many = (5, 15) if smoke else (50, 150)
    counts = [await _instructions(workdir, n) for n in (few, many)]
    per_callback = (counts[1] - counts[0]) / (many - few)
    return {
        "instructions_per_callback": round(per_callback),
        "instructions_per_delivery": round(per_callback / fanout.SUBSCRIBERS),
        "callbacks_counted": many - few,
        "subscribers": fanout.SUBSCRIBERS,
    }
