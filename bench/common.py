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
import attrs
from aiohttp.test_utils import unused_port

from gateway.tenants import digest_key

ROOT = Path(__file__).resolve().parent.parent


@attrs.frozen
class Child:
    port: int
    pid: int

    def rss_bytes(self) -> int:
        """Resident memory now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.pid}")


@contextlib.asynccontextmanager
async def process(
    *args: str,
    health: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    append_port: bool = True,
    log: Path | None = None,
    wrapper: Sequence[str] = (),
    start_seconds: float = 20.0,
) -> AsyncIterator[Child]:
    """Run `[WRAPPER...] python -m ARGS... [PORT]` until the block ends; yields it once `health`
    answers (within `start_seconds`), and stops it with SIGTERM.

    Its output goes to `log` (default: discarded), so that a chatty server's logging is paid for
    as in production without flooding the benchmark's table.
    """
    port = port or unused_port()
    output = (log or Path(os.devnull)).open("ab")
    child = await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        *args,
        *([str(port)] if append_port else []),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=output,
        stderr=output,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(round(start_seconds / 0.05)):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}{health}") as response:
                        if response.status < 500:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"{' '.join(args)} did not start")
        yield Child(port, child.pid)
    finally:
        child.terminate()
        await child.wait()
        output.close()


@contextlib.asynccontextmanager
async def nginx(workdir: Path, locations: str) -> AsyncIterator[int]:
    """nginx (Debian's, installed by `make bench`) serving canned answers: an upstream that is
    not the bottleneck. `locations` is the body of its server block."""
    port = unused_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir};
    proxy_temp_path {workdir};
    fastcgi_temp_path {workdir};
    uwsgi_temp_path {workdir};
    scgi_temp_path {workdir};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;
        {locations}
    }}
}}
"""
    )
    child = await asyncio.create_subprocess_exec("nginx", "-c", str(conf), "-p", str(workdir))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/"):
                        break
                await asyncio.sleep(0.05)
        yield port
    finally:
        child.terminate()
        await child.wait()


def pictofit_config(
    path: Path,
    *,
    workdir: Path,
    upstream: str,
    caller_key: str,
    customer: str,
    store_url: str | None = None,
) -> None:
    """A gateway configuration: one tenant on PICTOFiT at `upstream`, logging as in production
    (info, to whatever the process writes to); its key is read from $BENCH_PICTOFIT_KEY."""
    path.write_text(
        f"""
[store]
url = "{store_url or f"sqlite:///{workdir}/gateway.db"}"

[log]
level = "info"

[[tenants]]
id = "bench"
keys = ["{digest_key(caller_key)}"]

[tenants.backends.pictofit]
base_url = "{upstream}"
customer_id = "{customer}"
api_key = "env:BENCH_PICTOFIT_KEY"
"""
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
