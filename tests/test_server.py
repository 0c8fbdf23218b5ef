"""The listening server (gateway.server), driven over raw sockets: slow, idle and surplus clients
are cut off within their limits, and `gateway serve` applies them (and settles the heap) once
it listens."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import unused_port

from gateway.server import FD_RESERVE, EdgeSite, settle_heap, track_requests
from gateway.server.heap import YOUNG_THRESHOLD
from gateway.settings import ServerSettings
from gateway.testing import GatewayLogs
from tests.conftest import (
    CALLER_KEY_A,
    eventually,
)
from tests.edge_server import MB, QUICK, Serve, exchange, get, read_answer, rest_until_closed, serve

__all__ = ["serve"]  # the fixture, for this module's tests


# -- slow, idle and surplus clients (issue 12, row 7) ----------------------------------------------


async def test_a_client_that_never_finishes_its_headers_is_closed_with_a_408(
    serve: Serve,
) -> None:
    """Headers dripped a byte at a time and never finished: after headers_timeout the client
    gets a 408 problem and the connection is closed (aiohttp alone keeps it for an hour)."""
    edge = await serve(**QUICK)
    reader, writer = await edge.connect()
    started = asyncio.get_running_loop().time()

    async def drip() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n")
        for byte in b"X-Slow: 1234567890":
            await asyncio.sleep(0.1)
            writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip())
    try:
        rest = await rest_until_closed(reader)
    finally:
        dripping.cancel()
        writer.close()
    assert asyncio.get_running_loop().time() - started < 0.5 + 1.0
    assert rest.startswith(b"HTTP/1.1 408 "), rest
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head
    assert orjson.loads(body)["type"] == "urn:gateway:problem:request-timeout"


async def test_a_connection_that_sends_nothing_is_closed_silently(
    serve: Serve, logs: GatewayLogs
) -> None:
    """A connection opened and left silent is closed after headers_timeout, with no answer (no
    request began: an unasked 408 could be read as the answer to the next one)."""
    edge = await serve(**QUICK)
    reader, writer = await edge.connect()
    try:
        assert await rest_until_closed(reader) == b""
    finally:
        writer.close()
    assert [line["waiting_for"] for line in logs.events("http.timeout")] == ["headers"]


async def test_a_body_sent_too_slowly_is_cut_off(serve: Serve, logs: GatewayLogs) -> None:
    """A body dripping one byte per 0.8 s (body_idle_timeout 0.5) is cut off: the connection
    closes and the request is logged as a 408, not as an unhandled error."""
    edge = await serve(**QUICK)
    reader, writer = await edge.connect()
    head = (
        f"PUT /v1/products/{uuid.uuid4()} HTTP/1.1\r\nHost: gateway.test\r\n"
        f"Authorization: Bearer {CALLER_KEY_A}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    writer.write(head.encode() + b'{"name": ')

    async def drip() -> None:
        for byte in b'"slow", "type": "SHIRT"':
            await asyncio.sleep(0.8)
            writer.write(bytes([byte]))

    dripping = asyncio.create_task(drip())
    try:
        await rest_until_closed(reader)
    finally:
        dripping.cancel()
        writer.close()
    await eventually(lambda: bool(logs.events("http.request")))
    [line] = logs.events("http.request")
    assert (line["route"], line["status"]) == ("putProduct", 408)
    assert not logs.events("http.unhandled_error")
    assert [line["waiting_for"] for line in logs.events("http.timeout")] == ["body"]


async def test_an_idle_keep_alive_connection_is_closed(serve: Serve) -> None:
    """After an answer, a kept-alive connection left idle is closed after keepalive_timeout."""
    edge = await serve(**QUICK)
    reader, writer = await edge.connect()
    try:
        writer.write(get("/healthz"))
        assert (await read_answer(reader)).status == 200
        assert await rest_until_closed(reader) == b""
    finally:
        writer.close()


async def test_an_answer_made_before_the_app_ends_the_headers_timer(serve: Serve) -> None:
    """aiohttp answers an unknown `Expect` itself (417) without the app seeing the request; the
    connection then idles as any other and closes without a stray 408."""
    edge = await serve(headers_timeout=0.5, keepalive_timeout=1.0)
    reader, writer = await edge.connect()
    try:
        writer.write(get("/healthz", "Expect: something-else"))
        assert (await read_answer(reader)).status == 417
        assert await rest_until_closed(reader) == b""
    finally:
        writer.close()


async def test_a_handler_waiting_on_its_upstream_is_not_cut_off(serve: Serve) -> None:
    """The limits are the client's: an upstream slower than all of them (1.5 s against 0.5 s)
    still gets its answer through, and the connection is kept alive after it."""
    edge = await serve(**QUICK)
    edge.upstream.hang_seconds = 1.5
    reader, writer = await edge.connect()
    try:
        writer.write(get("/v1/product-types", f"Authorization: Bearer {CALLER_KEY_A}"))
        assert (await read_answer(reader)).status == 200
        writer.write(get("/healthz"))
        assert (await read_answer(reader)).status == 200
    finally:
        writer.close()


async def test_a_body_waiting_for_a_busy_handler_is_not_cut_off() -> None:
    """While a handler is busy before reading its body, aiohttp stops reading once its buffer is
    full, and the client cannot send: that is not the client idling. A 4 MB body whose handler
    starts reading after 1.5 s (body_idle_timeout 0.5) arrives whole. (The gateway's own
    handlers read the body first; a slow disk or a busy process makes the same pause.)"""

    async def busy_then_read(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.json_response({"bytes": len(await request.read())})

    app = web.Application(middlewares=[track_requests], client_max_size=8 * MB)
    app.router.add_post("/busy", busy_then_read)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = EdgeSite(runner, ServerSettings(port=0, **QUICK))
        await site.start()
        body = b"b" * (4 * MB)
        head = f"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        answer = await exchange(site.port, head.encode() + body)
    finally:
        await runner.cleanup()
    assert answer.status == 200
    assert orjson.loads(answer.body) == {"bytes": len(body)}


async def test_the_connection_cap_holds(serve: Serve) -> None:
    """With max_connections = 3, a fourth connection gets a 503 problem and is closed; the three
    keep working, and once one closes a new connection is taken again."""
    edge = await serve(max_connections=3)
    held = [await edge.connect() for _ in range(3)]
    for reader, writer in held:  # each is accepted and counted before the next is tried
        writer.write(get("/healthz"))
        assert (await read_answer(reader)).status == 200
    reader, writer = await edge.connect()
    try:
        refused = await read_answer(reader)
        assert refused.status == 503
        assert refused.problem()["type"] == "urn:gateway:problem:too-many-connections"
        assert int(refused.headers["retry-after"]) > 0
        assert await rest_until_closed(reader) == b""
    finally:
        writer.close()
    for reader, writer in held:
        writer.write(get("/healthz"))
        assert (await read_answer(reader)).status == 200
    held[0][1].close()
    await asyncio.sleep(0.1)  # the server sees the close
    assert (await exchange(edge.port, get("/healthz"))).status == 200
    for _, writer in held[1:]:
        writer.close()


async def test_a_20_mb_upload_on_a_slow_link_passes(serve: Serve) -> None:
    """A 20 MB photo sent in 256 KiB pieces with pauses (about 3 s in all, far longer than every
    limit, each pause shorter than body_idle_timeout) is accepted whole."""
    edge = await serve(max_upload_mb=21, **QUICK)
    photo = b"\xff\xd8\xff" + b"j" * (20 * MB - 3)
    boundary = "edge-test-boundary"
    fields = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="guest"\r\n\r\ntrue\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="me.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    body = fields.encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    head = (
        "POST /v1/users/u-1/photos HTTP/1.1\r\nHost: gateway.test\r\n"
        f"Authorization: Bearer {CALLER_KEY_A}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await edge.connect()
    try:
        writer.write(head.encode())
        for offset in range(0, len(body), 256 * 1024):
            await asyncio.sleep(0.035)
            writer.write(body[offset : offset + 256 * 1024])
            await writer.drain()
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert answer.status == 201, answer.body
    assert orjson.loads(answer.body)["id"]
    assert edge.upstream.photos_uploaded == 1


async def test_gateway_serve_applies_the_server_limits(tmp_path: Path) -> None:
    """`gateway serve` listens with them: a request whose headers never end is cut off with a
    408 after the configured headers_timeout; and, started with a soft open-files limit of 256, it
    raises it to fit max_connections (1000) and its other descriptors."""
    port = unused_port()
    config = tmp_path / "gateway.toml"
    store = tmp_path / "data" / "gateway.db"
    config.write_text(
        f'[server]\nport = {port}\nheaders_timeout = 0.5\n[store]\nurl = "sqlite:///{store}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)),
        env=env,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while True:
                assert process.returncode is None, "gateway serve exited"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n")
            assert (await rest_until_closed(reader)).startswith(b"HTTP/1.1 408 ")
        finally:
            writer.close()
        soft, _ = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        assert soft == min(1000 + FD_RESERVE, hard)
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


def test_a_started_server_sets_the_collector_for_serving() -> None:
    """`settle_heap` (what `gateway serve` calls once it listens) freezes the heap as started out
    of the collector's reach and collects the young generation every 20k allocations, not 700."""
    saved = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, saved[1], saved[2])
        assert YOUNG_THRESHOLD >= 10_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
