"""Proxied read overhead: listConfigurations through the gateway, against the same read made
directly and through the least an aiohttp proxy can do.

nginx answers the PICTOFiT calls with canned JSON (not the bottleneck); wrk is the load generator
(one thread). The gateway runs as `gateway serve` with everything on: caller key check, request
validation, key translation, JSON logging (to a file) and metrics.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import nginx, pictofit_config, process

CALLER_KEY = "gwk_bench-proxy-caller-key"
CUSTOMER = "3d7a2d56-5b0e-4c61-9b1e-1f5b9a3c0e77"
PRODUCT = "8a1b6f0c-2f5e-4a8e-9d37-5c9f0e4b7a21"
CONFIGURATIONS = (
    '[{"productId":"' + PRODUCT + '","name":"Default","sku":"sku-1","createdAt":1533892992.29,'
    '"modifiedAt":1533893672.39,"stateId":4,"productTypeId":1,"customerId":"' + CUSTOMER + '",'
    '"url":null,"results":[{"format":"WEB","compressed":true,"url":"http://x/r.zip",'
    '"fileName":"r.zip"}],"metadata":{},"id":"85f09939-272c-406f-b3ad-3b4fcc991517"}]'
)
LOCATIONS = f"""
        location = /products/types {{ return 200 '[{{"id":1,"name":"GARMENT_2D"}}]'; }}
        location = /files/types {{ return 200 '[{{"id":1,"name":"FRONTAL"}}]'; }}
        location ~ ^/products/[^/]+/configurations$ {{ return 200 '{CONFIGURATIONS}'; }}
        location ~ ^/products/[^/]+$ {{
            return 200 '{{"id":"{PRODUCT}","name":"Bench","typeId":1}}';
        }}
        location / {{ return 200 '{{}}'; }}
"""


def write_config(path: Path, workdir: Path, upstream: str, store_url: str | None = None) -> None:
    pictofit_config(
        path,
        workdir=workdir,
        upstream=upstream,
        caller_key=CALLER_KEY,
        customer=CUSTOMER,
        store_url=store_url,
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s and the median latency (ms) from `wrk --latency`."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", output)
    if rps is None or p50 is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": float(p50.group(1)) * _UNITS[p50.group(2)],
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


async def wrk(
    url: str, *, connections: int, seconds: float, key: str | None = None
) -> dict[str, float]:
    args = ["-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if key:
        args += ["-H", f"Authorization: Bearer {key}"]
    child = await asyncio.create_subprocess_exec(
        "wrk", *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await child.communicate()
    result = parse_wrk(out.decode())
    assert result["non_2xx"] == 0, f"{url}: {result['non_2xx']} failed requests"
    return result


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    if not (shutil.which("wrk") and shutil.which("nginx")):
        raise RuntimeError(
            "the proxy benchmark needs wrk and nginx: run `make bench` (installs them)"
        )
    seconds = 1.0 if smoke else 10.0
    async with nginx(workdir, LOCATIONS) as upstream_port:
        upstream = f"http://127.0.0.1:{upstream_port}"
        config = workdir / "gateway.toml"
        write_config(config, workdir, upstream)
        env = {"BENCH_PICTOFIT_KEY": "bench-pictofit-key"}
        gateway_cli = ("gateway.cli", "serve", "--config", str(config), "--port")
        async with (
            process("bench.minimal_proxy", upstream, health="/products/types") as proxy,
            process(*gateway_cli, health="/healthz", env=env, log=workdir / "gateway.log") as gw,
        ):
            gateway = f"http://127.0.0.1:{gw.port}"
            auth = {"Authorization": f"Bearer {CALLER_KEY}"}
            async with aiohttp.ClientSession() as http:
                body = {"name": "Bench", "type": "GARMENT_2D"}
                async with http.put(
                    f"{gateway}/v1/products/{PRODUCT}", json=body, headers=auth
                ) as r:
                    assert r.status in {200, 201}, await r.text()
            path = f"/products/{PRODUCT}/configurations"
            read = f"{gateway}/v1{path}"
            await wrk(read, connections=8, seconds=min(seconds, 2.0), key=CALLER_KEY)  # warm up
            figures: dict[str, dict[str, float]] = {}
            for connections in (32, 1):
                figures[f"direct_c{connections}"] = await wrk(
                    f"{upstream}{path}", connections=connections, seconds=seconds
                )
                figures[f"proxy_c{connections}"] = await wrk(
                    f"http://127.0.0.1:{proxy.port}{path}", connections=connections, seconds=seconds
                )
                figures[f"gateway_c{connections}"] = await wrk(
                    read, connections=connections, seconds=seconds, key=CALLER_KEY
                )
    g32, p32, d32 = figures["gateway_c32"], figures["proxy_c32"], figures["direct_c32"]
    g1, p1, d1 = figures["gateway_c1"], figures["proxy_c1"], figures["direct_c1"]
    return {
        "gateway_rps_c32": round(g32["rps"]),
        "minimal_proxy_rps_c32": round(p32["rps"]),
        "direct_rps_c32": round(d32["rps"]),
        "gateway_vs_minimal_proxy_rps": round(g32["rps"] / p32["rps"], 3),
        "gateway_p50_ms_c1": round(g1["p50_ms"], 3),
        "minimal_proxy_p50_ms_c1": round(p1["p50_ms"], 3),
        "direct_p50_ms_c1": round(d1["p50_ms"], 3),
        "gateway_added_median_ms_c1": round(g1["p50_ms"] - d1["p50_ms"], 3),
        "gateway_added_over_proxy_ms_c1": round(g1["p50_ms"] - p1["p50_ms"], 3),
        "targets": {
            "gateway_vs_minimal_proxy_rps": ">= 0.8",
            "gateway_added_median_ms_c1": "<= 0.4",
        },
        "operation": "listConfigurations",
    }
