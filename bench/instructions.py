"""Proxied read overhead in instructions: what a listConfigurations costs the gateway's process,
against the minimal aiohttp proxy's, counted by valgrind (callgrind) rather than timed.

Requests per second on a shared 2-core machine move by 30-50% from one run to the next; counted
instructions are the same to a fraction of a percent, so this is the figure to compare commits
with. Each process runs once with `FEW` and once with `MANY` sequential requests; the difference,
divided by the extra requests, leaves out start-up and shut-down. The ratio is the share of the
floor's requests per second the gateway would keep if both were bound by the same CPU, instruction
for instruction (cache misses and system calls are not counted). With `BENCH_TELEMETRY=1` the
gateway traces every request ([telemetry], its spans exported to nginx): what tracing costs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from bench import proxy
from bench.common import nginx, process

TELEMETRY_ENV = "BENCH_TELEMETRY"  # set (=1): the gateway runs with [telemetry] on
_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


async def _instructions(
    args: tuple[str, ...],
    *,
    health: str,
    url: str,
    requests: int,
    workdir: Path,
    env: dict[str, str],
) -> int:
    """User-space instructions of one whole run of `python -m ARGS` serving `requests` GETs."""
    out = workdir / f"callgrind-{args[0]}-{requests}.out"
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
    auth = {"Authorization": f"Bearer {proxy.CALLER_KEY}"}
    async with (
        process(
            *args,
            health=health,
            env={**env, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
            wrapper=wrapper,
            start_seconds=900,  # under valgrind, on a loaded machine: minutes
            log=workdir / f"{args[0]}.log",
        ) as child,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{child.port}"
        if args[0] == "gateway.cli":
            body = {"name": "Bench", "type": "GARMENT_2D"}
            async with http.put(f"{base}/v1/products/{proxy.PRODUCT}", json=body, headers=auth):
                pass
        for _ in range(requests):
            async with http.get(base + url, headers=auth) as response:
                assert response.status == 200, await response.text()
                await response.read()
    # The process has exited (SIGTERM) and callgrind has written its totals.
    return max(int(n) for n in _TOTALS.findall(out.read_text(errors="replace")))


# The webhook workers look for due retries once a second by the clock; under valgrind a process
# runs ~50 times slower, so the slower the machine at the time (other work on it), the more idle
# polls a run made and counted per request (1.23M to 1.65M on one commit). No events are due
# here: poll once an hour, and the count is the requests' alone. (The recoverer's look for left
# recoveries, every 5 s, follows it: ~750 k instructions a look, 3-7 k a request.)
_QUIET_EVENTS = """
[events]
poll_interval = 3600.0
"""


def _forget_store(workdir: Path) -> None:
    """Each run starts from the same empty store."""
    for old in workdir.glob("gateway.db*"):
        old.unlink()


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    if not (shutil.which("valgrind") and shutil.which("nginx")):
        raise RuntimeError("this benchmark needs valgrind and nginx: run `make bench`")
    few, many = (10, 30) if smoke else (100, 300)
    traced = bool(os.environ.get(TELEMETRY_ENV))
    path = f"/products/{proxy.PRODUCT}/configurations"
    per_request: dict[str, float] = {}
    async with nginx(workdir, proxy.LOCATIONS) as upstream_port:
        upstream = f"http://127.0.0.1:{upstream_port}"
        config = workdir / "gateway.toml"
        proxy.write_config(config, workdir, upstream)
        with config.open("a") as extra:
            extra.write(_QUIET_EVENTS)
        if traced:
            # Every request traced and exported (OTLP/HTTP, batched) to nginx, which answers 200:
            # what tracing costs the process, the exporter's thread included.
            with config.open("a") as toml:
                toml.write(f'\n[telemetry]\nendpoint = "{upstream}"\n')
        targets = {
            "gateway": (
                ("gateway.cli", "serve", "--config", str(config), "--port"),
                "/healthz",
                "/v1" + path,
            ),
            "minimal_proxy": (("bench.minimal_proxy", upstream), "/products/types", path),
        }
        env = {"BENCH_PICTOFIT_KEY": "bench-pictofit-key"}
        for name, (args, health, url) in targets.items():
            counts = []
            for requests in (few, many):
                _forget_store(workdir)
                counts.append(
                    await _instructions(
                        args, health=health, url=url, requests=requests, workdir=workdir, env=env
                    )
                )
            per_request[name] = (counts[1] - counts[0]) / (many - few)
    gateway, floor = per_request["gateway"], per_request["minimal_proxy"]
    return {
        "gateway_instructions_per_request": round(gateway),
        "minimal_proxy_instructions_per_request": round(floor),
        "gateway_vs_minimal_proxy_instructions": round(floor / gateway, 3),
        "requests_counted": many - few,
        "operation": "listConfigurations",
        "telemetry": "on (every request traced, OTLP export)" if traced else "off",
    }
