"""Uploads: concurrent 20 MB images through the gateway, against the same uploads made directly.

The PICTOFiT sandbox is the upstream (its own process). The gateway spools each upload to disk,
reads the image header for its preflight and streams the file upstream; its resident memory is
sampled throughout, so the figure is the peak growth over its resident memory before the burst.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench.common import Child, pictofit_config, process

CALLER_KEY = "gwk_bench-uploads-caller-key"
SANDBOX_KEY = "sandbox-pictofit-key"
CUSTOMER = "00000000-0000-4000-8000-000000000001"


def noise_png(path: Path, side: int) -> int:
    """An RGB PNG of random pixels (incompressible): side x side x 3 bytes, about."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


async def _sample_rss(child: Child, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], child.rss_bytes())
        await asyncio.sleep(0.005)


async def direct(http: aiohttp.ClientSession, sandbox: str, image: Path, count: int) -> float:
    """Seconds for `count` concurrent uploads straight to the sandbox's POST /files."""
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    product, configuration = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"customerId": CUSTOMER, "name": "direct", "typeId": 1}
    async with http.put(f"{sandbox}/products/{product}", json=body, headers=headers) as r:
        assert r.status in {200, 201}, await r.text()
    body = {"productId": product, "name": "direct"}
    async with http.put(
        f"{sandbox}/configurations/{configuration}", json=body, headers=headers
    ) as r:
        assert r.status in {200, 201}, await r.text()

    async def upload() -> None:
        with image.open("rb") as f:
            form = aiohttp.FormData()
            form.add_field("file", f, filename="big.png", content_type="image/png")
            form.add_field("id", str(uuid.uuid4()))
            form.add_field("name", "big")
            form.add_field("configurationId", configuration)
            form.add_field("typeId", "1")
            async with http.post(f"{sandbox}/files", data=form, headers=headers) as r:
                assert r.status in {200, 201}, await r.text()

    started = time.perf_counter()
    await asyncio.gather(*(upload() for _ in range(count)))
    return time.perf_counter() - started


async def through_gateway(
    http: aiohttp.ClientSession, gateway: Child, image: Path, count: int
) -> tuple[float, int, int]:
    """Seconds for `count` concurrent uploads through the gateway, its RSS before and at peak."""
    base = f"http://127.0.0.1:{gateway.port}/v1"
    auth = {"Authorization": f"Bearer {CALLER_KEY}"}
    product, configuration = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"name": "bench", "type": "GARMENT_2D"}
    async with http.put(f"{base}/products/{product}", json=body, headers=auth) as r:
        assert r.status in {200, 201}, await r.text()
    url = f"{base}/products/{product}/configurations/{configuration}"
    async with http.put(url, json={"name": "bench"}, headers=auth) as r:
        assert r.status in {200, 201}, await r.text()

    async def upload() -> None:
        with image.open("rb") as f:
            form = aiohttp.FormData()
            form.add_field("file", f, filename="big.png", content_type="image/png")
            form.add_field("kind", "FRONTAL")
            async with http.post(f"{url}/images", data=form, headers=auth) as r:
                assert r.status == 201, await r.text()

    await upload()  # warm: first-use allocations are not what this measures
    before = gateway.rss_bytes()
    peak = [before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(gateway, peak, stop))
    started = time.perf_counter()
    await asyncio.gather(*(upload() for _ in range(count)))
    elapsed = time.perf_counter() - started
    stop.set()
    await sampler
    return elapsed, before, peak[0]


async def run(workdir: Path, *, smoke: bool) -> dict[str, Any]:
    count = 3 if smoke else 20
    image = workdir / "big.png"
    size = noise_png(image, 1200 if smoke else 2560)  # 2560² RGB: 19.7 MB
    env = {"BENCH_PICTOFIT_KEY": SANDBOX_KEY}
    async with process("bench.sandbox", "pictofit", health="/products/types") as sandbox:
        upstream = f"http://127.0.0.1:{sandbox.port}"
        config = workdir / "gateway.toml"
        pictofit_config(
            config, workdir=workdir, upstream=upstream, caller_key=CALLER_KEY, customer=CUSTOMER
        )
        gateway_cli = ("gateway.cli", "serve", "--config", str(config), "--port")
        async with (
            process(*gateway_cli, health="/healthz", env=env, log=workdir / "gw.log") as gateway,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http,
        ):
            direct_seconds = await direct(http, upstream, image, count)
            gateway_seconds, before, peak = await through_gateway(http, gateway, image, count)
    megabytes = size * count / 1e6
    return {
        "uploads": count,
        "image_mb": round(size / 1e6, 1),
        "gateway_mb_per_second": round(megabytes / gateway_seconds, 1),
        "direct_mb_per_second": round(megabytes / direct_seconds, 1),
        "throughput_ratio": round(direct_seconds / gateway_seconds, 3),
        "gateway_rss_before_mb": round(before / 2**20, 1),
        "gateway_rss_growth_mb": round((peak - before) / 2**20, 1),
        "targets": {"throughput_ratio": ">= 0.8", "gateway_rss_growth_mb": "<= 64"},
    }
