"""What every benchmark needs: processes on free ports, waiting for them, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
from aiohttp.test_utils import unused_port

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def process(*args: str, health: str, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """Run `python -m ARGS... PORT` until the block ends; yields the port once `health` answers."""
    port = unused_port()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        str(port),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}{health}") as response:
                        if response.status < 500:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"{' '.join(args)} did not start")
        yield port
    finally:
        child.terminate()
        await child.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
