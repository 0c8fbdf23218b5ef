"""Scaling: listConfigurations requests/s with `gateway serve --workers 1` and `--workers 2`.

Several processes need the PostgreSQL store (SQLite serves one), so the gateway runs on a server
of the benchmark's own (Debian's binaries, `make postgres`); nginx is the upstream and wrk the load,
as in `bench.proxy`. The baseline is one worker, measured in the same run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from bench import proxy
from bench.common import nginx, process
from tests.pg import PostgresServer, find_binaries

WORKERS = (1, 2)


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found: run `make postgres` as root")
    seconds = 1.0 if smoke else 10.0
    server = PostgresServer(binaries)
    results: dict[str, Any] = {}
    try:
        await asyncio.to_thread(server.start, durable=True)
        async with nginx(workdir, proxy.LOCATIONS) as upstream_port:
            upstream = f"http://127.0.0.1:{upstream_port}"
            for workers in WORKERS:
                config = workdir / f"scaling-{workers}.toml"
                proxy.write_config(config, workdir, upstream, await server.create_database())
                cli = ("gateway.cli", "serve", "--config", str(config), "--workers", str(workers))
                env = {"BENCH_PICTOFIT_KEY": "bench-pictofit-key"}
                async with process(
                    *cli, "--port", health="/healthz", env=env, log=workdir / "scaling.log"
                ) as gateway:
                    base = f"http://127.0.0.1:{gateway.port}/v1/products/{proxy.PRODUCT}"
                    async with aiohttp.ClientSession() as http:
                        body = {"name": "Bench", "type": "GARMENT_2D"}
                        auth = {"Authorization": f"Bearer {proxy.CALLER_KEY}"}
                        async with http.put(base, json=body, headers=auth) as r:
                            assert r.status in {200, 201}, await r.text()
                    read = f"{base}/configurations"
                    await proxy.wrk(read, connections=8, seconds=1, key=proxy.CALLER_KEY)
                    figures = await proxy.wrk(
                        read, connections=32, seconds=seconds, key=proxy.CALLER_KEY
                    )
                results[f"workers_{workers}_rps_c32"] = round(figures["rps"])
    finally:
        await asyncio.to_thread(server.remove)
    results["workers_2_vs_1"] = round(
        results["workers_2_rps_c32"] / results["workers_1_rps_c32"], 2
    )
    results["store"] = "postgresql"
    return results
