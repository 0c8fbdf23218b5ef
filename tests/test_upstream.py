"""The instrumented upstream client, against real aiohttp servers on loopback: what a call sends,
logs and counts, which calls are retried and for how long, and streamed downloads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gateway.metrics import UpstreamMetrics
from gateway.redaction import REDACTED, SecretRegistry
from gateway.upstream import (
    UpstreamClient,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.upstream_clients import FAST, SECRET, Provider, bound, calls, make_client
from tests.upstream_fakes import Upstream, closed_port, reply, serve

__all__ = ["make_client", "serve"]  # the fixtures, for this module's tests


# --- requests ---------------------------------------------------------------------------------


async def test_credentials_injected_per_attempt_and_caller_authorization_dropped(
    serve: Any, make_client: Any
) -> None:
    """Each attempt asks for credentials anew and sends them; the caller's Authorization never."""
    upstream = Upstream(reply(503), reply(200, {"ok": True}))
    base = await serve(upstream)
    provider = Provider()
    client = await make_client(provider)
    response = await bound(client).request(
        "GET", base + "thing", headers={"Authorization": "Bearer caller", "X-Custom": "1"}
    )
    assert response.json() == {"ok": True}
    assert provider.calls == [False, False]
    assert [h["Authorization"] for h in upstream.headers] == ["Bearer tok-1", "Bearer tok-2"]
    assert all(h["X-Custom"] == "1" for h in upstream.headers)


async def test_request_id_sent_upstream(serve: Any, make_client: Any) -> None:
    """The caller's request id travels upstream as X-Request-ID."""
    upstream = Upstream(reply(204))
    base = await serve(upstream)
    client = await make_client()
    response = await bound(client).request("DELETE", base + "thing/1")
    assert response.status == 204
    assert upstream.headers[0]["X-Request-ID"] == "req-1"


async def test_one_log_line_per_attempt_with_fields_and_secrets_redacted(
    serve: Any, make_client: Any
) -> None:
    """One complete `upstream.call` line per attempt; the secret query value appears nowhere."""
    upstream = Upstream(reply(200, {"value": 1}))
    base = await serve(upstream)
    client = await make_client(Provider(query={"webApiClientKey": SECRET}))
    with capture_logs() as logs:
        response = await bound(client).request(
            "POST", base + "things", params={"q": "x"}, json={"a": 1}
        )
    assert upstream.seen[0].query["webApiClientKey"] == SECRET  # it did go upstream
    [line] = calls(logs)
    assert line["log_level"] == "info"
    assert line["request_id"] == "req-1"
    assert line["tenant"] == "t1"
    assert line["backend"] == "acme"
    assert line["operation"] == "getThing"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["attempt"] == 1
    assert line["url"] == f"{base}things?q=x&webApiClientKey={REDACTED}"
    assert line["bytes_sent"] == len(b'{"a":1}')
    assert line["bytes_received"] == len(response.body)
    assert isinstance(line["duration_ms"], float)
    assert "error" not in line
    assert all(SECRET not in repr(value) for event in logs for value in event.values())


async def test_get_retried_on_503_then_succeeds(serve: Any, make_client: Any) -> None:
    """An idempotent GET is retried after a 503; attempts 1 and 2 are both logged."""
    upstream = Upstream(reply(503), reply(200, {"ok": True}))
    base = await serve(upstream)
    client = await make_client()
    with capture_logs() as logs:
        response = await bound(client).request("GET", base + "thing")
    assert response.status == 200
    assert len(upstream.seen) == 2
    lines = calls(logs)
    assert [(e["attempt"], e["status"]) for e in lines] == [(1, 503), (2, 200)]
    assert lines[0]["log_level"] == "warning"
    assert lines[0]["error"] == "HTTP 503"
    assert "error" not in lines[1]


async def test_post_not_retried_on_503(serve: Any, make_client: Any) -> None:
    """A POST is not idempotent: a 503 becomes a 502 problem after one attempt."""
    upstream = Upstream(reply(503), reply(200))
    base = await serve(upstream)
    client = await make_client()
    with pytest.raises(UpstreamServerError) as caught:
        await bound(client).request("POST", base + "jobs", json={})
    assert caught.value.status == 502
    assert caught.value.slug == "upstream-error"
    assert "503" in (caught.value.detail or "")
    assert "acme" in (caught.value.detail or "")
    assert len(upstream.seen) == 1


async def test_post_retried_when_idempotent_with_form_factory(serve: Any, make_client: Any) -> None:
    """With idempotent=True and a body factory, a multipart POST is rebuilt and sent again."""
    upstream = Upstream(reply(503), reply(201, {"id": "j1"}))
    base = await serve(upstream)
    client = await make_client()

    def form() -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("name", "pic")
        data.add_field("file", b"\x89PNG" * 1000, filename="a.png", content_type="image/png")
        return data

    with capture_logs() as logs:
        response = await bound(client).request("POST", base + "jobs", data=form, idempotent=True)
    assert response.status == 201
    assert len(upstream.seen) == 2
    # Same content (each form has its own multipart boundary).
    assert all(b"\x89PNG" * 1000 in body and b"pic" in body for body in upstream.bodies)
    assert [e["bytes_sent"] for e in calls(logs)] == [len(body) for body in upstream.bodies]


async def test_429_retry_after_honoured(serve: Any, make_client: Any) -> None:
    """A 429 with Retry-After: 1 is retried after about a second."""
    upstream = Upstream(reply(429, {"message": "slow down"}, {"Retry-After": "1"}), reply(200))
    base = await serve(upstream)
    client = await make_client()
    started = time.monotonic()
    response = await bound(client).request("GET", base + "thing")
    waited = time.monotonic() - started
    assert response.status == 200
    assert len(upstream.seen) == 2
    assert 0.9 <= waited < 3


async def test_429_retry_after_above_cap_not_retried(serve: Any, make_client: Any) -> None:
    """A Retry-After beyond the cap is not waited for: a 429 problem carrying it, at once."""
    upstream = Upstream(reply(429, {"message": "quota exhausted"}, {"Retry-After": "120"}))
    base = await serve(upstream)
    client = await make_client()
    with pytest.raises(UpstreamRejected) as caught:
        await bound(client).request("GET", base + "thing")
    assert caught.value.status == 429
    assert caught.value.headers == {"Retry-After": "120"}
    assert "quota exhausted" in (caught.value.detail or "")
    assert len(upstream.seen) == 1


async def test_deadline_exhausted_stops_retries(serve: Any, make_client: Any) -> None:
    """No retry whose wait would outlast the caller's deadline; an attempt never outlives it."""
    upstream = Upstream(reply(503, headers={"Retry-After": "1"}))
    base = await serve(upstream)
    client = await make_client()
    loop = asyncio.get_running_loop()
    with pytest.raises(UpstreamServerError):
        await bound(client, deadline=loop.time() + 0.5).request("GET", base + "thing")
    assert len(upstream.seen) == 1

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response()

    base = await serve(Upstream(slow))
    started = loop.time()
    with pytest.raises(UpstreamTimeout):
        await bound(client, deadline=started + 0.3).request("GET", base + "slow")
    assert loop.time() - started < 1.0


async def test_cross_origin_redirect_drops_credentials(serve: Any, make_client: Any) -> None:
    """A redirect to another origin is followed without the gateway's credential headers."""
    target = Upstream(reply(200, {"ok": True}))
    target_base = await serve(target)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target_base + "file")

    base = await serve(Upstream(redirect))
    client = await make_client()
    response = await bound(client).request("GET", base + "download")
    assert response.json() == {"ok": True}
    assert "Authorization" not in target.headers[0]
    assert target.headers[0]["X-Request-ID"] == "req-1"


# --- streaming --------------------------------------------------------------------------------


async def test_stream_downloads_large_body_and_logs_bytes(serve: Any, make_client: Any) -> None:
    """A 5 MB download is read chunk by chunk; its one log line, at exit, counts every byte."""
    payload = bytes(range(256)) * (5 * 4096)

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(payload), 256 * 1024):
            await response.write(payload[start : start + 256 * 1024])
        await response.write_eof()
        return response

    base = await serve(Upstream(reply(503), big))
    client = await make_client()
    received = bytearray()
    chunks = 0
    with capture_logs() as logs:
        async with bound(client).stream("GET", base + "result.bin") as response:
            assert [e["status"] for e in calls(logs)] == [503]  # the 2xx line waits for exit
            async for chunk in response.content.iter_chunked(64 * 1024):
                received += chunk
                chunks += 1
    assert bytes(received) == payload
    assert chunks > 10
    last = calls(logs)[-1]
    assert last["status"] == 200
    assert last["attempt"] == 2
    assert last["bytes_received"] == len(payload)
    assert "error" not in last


async def test_stream_non_2xx_raises_mapped_error(serve: Any, make_client: Any) -> None:
    """A streamed 404 raises UpstreamRejected with the upstream's reason, never yields a body."""
    base = await serve(Upstream(reply(404, {"detail": "no such result"})))
    client = await make_client()
    with pytest.raises(UpstreamRejected) as caught:
        async with bound(client).stream("GET", base + "result.bin"):
            pytest.fail("a 404 must not be handed over")
    assert caught.value.status == 404
    assert "no such result" in (caught.value.detail or "")


# --- metrics ----------------------------------------------------------------------------------


async def test_metrics_updated_in_given_registry(serve: Any, make_client: Any) -> None:
    """Per-attempt counters, latency and breaker state land in the app's own registry."""
    registry = CollectorRegistry()
    base = await serve(Upstream(reply(503), reply(200)))
    client = await make_client(registry=registry)
    await bound(client).request("GET", base + "thing")
    with pytest.raises(UpstreamUnavailable):
        await bound(client).request("GET", f"http://127.0.0.1:{closed_port()}/x")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"backend": "acme", **labels})

    op = {"operation": "getThing"}
    assert value("gateway_upstream_calls_total", status="503", **op) == 1
    assert value("gateway_upstream_calls_total", status="200", **op) == 1
    assert value("gateway_upstream_calls_total", status="connection_error", **op) == 3
    assert value("gateway_upstream_call_duration_seconds_count", **op) == 5
    assert value("gateway_upstream_breaker_state") == 0


# --- cheap paths keep their guarantees ----------------------------------------------------------


async def test_bodiless_attempts_count_nothing_sent_between_bodies(
    serve: Any, make_client: Any
) -> None:
    """Bodiless attempts share one never-counted stats object: a GET logs 0 bytes sent, before and
    after a POST whose body is counted."""
    upstream = Upstream(reply(200, {"ok": True}))
    base = await serve(upstream)
    client = await make_client()
    with capture_logs() as logs:
        await bound(client).request("GET", base + "a")
        await bound(client).request("POST", base + "b", json={"a": 1})
        await bound(client).request("GET", base + "a")
    assert [line["bytes_sent"] for line in calls(logs)] == [0, len(b'{"a":1}'), 0]


def test_a_loop_with_its_own_clock_is_read_by_it() -> None:
    """Deadlines and durations are read with the running loop's own `time()` when it has one
    (uvloop, a test's clock), not with `time.monotonic` as for asyncio's loops."""

    class Behind(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return super().time() - 10_000.0

    async def main() -> None:
        upstream = Upstream(reply(200, {"ok": True}))
        server = TestServer(upstream.app())
        await server.start_server()
        client = UpstreamClient(
            "acme",
            policy=FAST,
            credentials=Provider(),
            metrics=UpstreamMetrics(CollectorRegistry()),
            secrets=SecretRegistry(),
        )
        await client.start()
        try:
            loop = asyncio.get_running_loop()
            with capture_logs() as logs:
                response = await bound(client, deadline=loop.time() + 5.0).request(
                    "GET", str(server.make_url("/thing"))
                )
                await bound(client).request("GET", str(server.make_url("/thing")))
            assert response.json() == {"ok": True}
            assert [0 <= line["duration_ms"] < 5_000 for line in calls(logs)] == [True, True]
        finally:
            await client.close()
            await server.close()

    loop = Behind()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
