"""The instrumented upstream client, against real aiohttp servers on loopback."""

from __future__ import annotations

import ast
import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import example, given, strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from yarl import URL

import gateway.upstream
from gateway import wire
from gateway.metrics import UpstreamMetrics
from gateway.plugin_api import Credentials, CredentialsRequest
from gateway.redaction import REDACTED, SENSITIVE_QUERY_NAMES, SecretRegistry, redact_url
from gateway.upstream import (
    BoundUpstream,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    UpstreamClient,
    UpstreamCredentialsRejected,
    UpstreamPolicy,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

SECRET = "SECRET-KEY-123"
FAST = UpstreamPolicy(
    connect_timeout=1.0,
    attempt_timeout=2.0,
    deadline=5.0,
    max_attempts=3,
    backoff_base=0.001,
    backoff_cap=0.01,
    retry_after_cap=2.0,
    breaker_threshold=100,
    breaker_reset=30.0,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Provider:
    """A credentials provider that records its calls; token `n` is handed out on the n-th call."""

    def __init__(self, *, query: dict[str, str] | None = None) -> None:
        self.calls: list[bool] = []
        self.refused: list[Credentials | None] = []  # what each call was told was refused
        self.query = query or {}

    async def __call__(self, request: CredentialsRequest) -> Credentials:
        refresh = request.refused is not None
        self.calls.append(refresh)
        self.refused.append(request.refused)
        token = f"tok-{len(self.calls)}" + ("-fresh" if refresh else "")
        return Credentials(
            headers={"Authorization": f"Bearer {token}"},
            query=self.query,
            secrets=frozenset({token, *self.query.values()}),
        )


class Upstream:
    """A real upstream app whose answers are scripted per hit; it records what it received."""

    def __init__(self, *answers: Handler) -> None:
        self.answers = list(answers)
        self.seen: list[web.Request] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        self.headers.append(dict(request.headers))
        self.bodies.append(await request.read())
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return await answer(request)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return answer


def calls(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "upstream.call"]


@pytest.fixture
async def serve(aiohttp_server: ServerFactory) -> Callable[[Upstream], Awaitable[str]]:
    async def start(upstream: Upstream) -> str:
        server = await aiohttp_server(upstream.app())
        return str(server.make_url("/"))

    return start


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Awaitable[UpstreamClient]]]:
    clients: list[UpstreamClient] = []

    async def build(
        provider: Provider | None = None,
        policy: UpstreamPolicy = FAST,
        registry: CollectorRegistry | None = None,
    ) -> UpstreamClient:
        client = UpstreamClient(
            "acme",
            policy=policy,
            credentials=provider or Provider(),
            metrics=UpstreamMetrics(registry or CollectorRegistry()),
            secrets=SecretRegistry(),
        )
        await client.start()
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


def bound(client: UpstreamClient, **kwargs: Any) -> BoundUpstream:
    return client.bind(tenant="t1", config=None, request_id="req-1", operation="getThing", **kwargs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- redaction --------------------------------------------------------------------------------


def test_sensitive_query_names() -> None:
    """The name pattern catches key/token/secret/password anywhere, sig/auth as whole words."""
    for name in ("key", "apikey", "api_key", "webApiClientKey", "token", "access_token",
                 "secret", "client_secret", "password", "signature", "sig", "auth",
                 "authorization", "X-Amz-Signature"):  # fmt: skip
        assert SENSITIVE_QUERY_NAMES.search(name), name
    for name in ("q", "page", "design", "author", "size"):
        assert not SENSITIVE_QUERY_NAMES.search(name), name


def test_redact_url_hides_names_values_and_password() -> None:
    """Sensitive query values, the userinfo password and known secrets (even encoded) vanish."""
    url = "https://user:pw@api.example/v1/a+b%2Fc/x?apikey=k1&q=hello&note=a%2Bb/c&p=1#f"
    out = redact_url(url, ["a+b/c"])
    assert "apikey=[REDACTED]" in out
    assert "q=hello" in out
    assert "p=1" in out
    assert "pw" not in out
    assert "k1" not in out
    assert "a+b/c" not in out
    assert "a%2Bb" not in out
    assert "b%2Fc" not in out
    assert out.startswith("https://user@api.example/v1/")


def test_secret_registry_scrubs_and_ignores_short_values() -> None:
    """Values shorter than 4 characters are not registered; known ones are scrubbed."""
    registry = SecretRegistry()
    registry.add("", "abc", "s3cr3t-value")
    assert len(registry) == 1
    assert "s3cr3t-value" in registry
    assert "abc" not in registry
    assert registry.scrub("x s3cr3t-value y abc") == f"x {REDACTED} y abc"


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


async def test_timeout_is_504(serve: Any, make_client: Any) -> None:
    """An upstream slower than the attempt timeout becomes UpstreamTimeout (504)."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response()

    base = await serve(Upstream(slow))
    client = await make_client(policy=UpstreamPolicy(attempt_timeout=0.2, max_attempts=1))
    with capture_logs() as logs, pytest.raises(UpstreamTimeout) as caught:
        await bound(client).request("GET", base + "slow")
    assert caught.value.status == 504
    assert caught.value.slug == "upstream-timeout"
    [line] = calls(logs)
    assert line["error"] == "timeout"
    assert line["status"] is None


async def test_connection_refused_is_502(make_client: Any) -> None:
    """Nothing listening: UpstreamUnavailable (502) after the retries, each attempt logged."""
    client = await make_client()
    with capture_logs() as logs, pytest.raises(UpstreamUnavailable) as caught:
        await bound(client).request("GET", f"http://127.0.0.1:{closed_port()}/x")
    assert caught.value.status == 502
    assert caught.value.slug == "upstream-unavailable"
    assert [e["attempt"] for e in calls(logs)] == [1, 2, 3]
    assert all(e["error"].startswith("ClientConnectorError") for e in calls(logs))


async def test_4xx_passed_on_with_upstream_reason(serve: Any, make_client: Any) -> None:
    """An upstream 422 becomes a 422 problem whose detail is the upstream's (scrubbed) message."""
    message = f"bad size for https://api.example/x?apikey={SECRET}, key {SECRET} ok"
    upstream = Upstream(reply(422, {"error": {"message": message}}))
    base = await serve(upstream)
    client = await make_client(Provider(query={"apikey": SECRET}))
    with pytest.raises(UpstreamRejected) as caught:
        await bound(client).request("PUT", base + "thing", json={"size": -1})
    detail = caught.value.detail or ""
    assert caught.value.status == 422
    assert caught.value.slug == "upstream-rejected"
    assert "acme" in detail
    assert "bad size for https://api.example/x?" in detail
    assert SECRET not in detail
    assert f"key {REDACTED} ok" in detail
    assert len(upstream.seen) == 1


async def test_expected_status_returned(serve: Any, make_client: Any) -> None:
    """A status listed in `expect` is returned, not raised, and logged as a success."""
    base = await serve(Upstream(reply(404, {"message": "no such thing"})))
    client = await make_client()
    with capture_logs() as logs:
        response = await bound(client).request("GET", base + "thing", expect=(404,))
    assert response.status == 404
    assert response.json() == {"message": "no such thing"}
    assert calls(logs)[0]["log_level"] == "info"


async def test_401_refreshes_credentials_once_then_succeeds(serve: Any, make_client: Any) -> None:
    """A 401 asks for fresh credentials and resends once, even for a POST."""

    async def check(request: web.Request) -> web.StreamResponse:
        fresh = request.headers["Authorization"].endswith("-fresh")
        return web.json_response({"ok": True}) if fresh else web.Response(status=401)

    upstream = Upstream(check)
    base = await serve(upstream)
    provider = Provider()
    client = await make_client(provider)
    with capture_logs() as logs:
        response = await bound(client).request("POST", base + "jobs", json={})
    assert response.status == 200
    assert provider.calls == [False, True]
    assert provider.refused[1] is not None
    assert provider.refused[1].headers["Authorization"] == "Bearer tok-1"  # the one refused
    assert [(e["attempt"], e["status"]) for e in calls(logs)] == [(1, 401), (2, 200)]


async def test_401_twice_is_credentials_rejected_502(serve: Any, make_client: Any) -> None:
    """A 401 after the refresh is never passed on: a 502 naming the backend, and an error log."""
    upstream = Upstream(reply(401))
    base = await serve(upstream)
    provider = Provider()
    client = await make_client(provider)
    with capture_logs() as logs, pytest.raises(UpstreamCredentialsRejected) as caught:
        await bound(client).request("GET", base + "thing")
    assert caught.value.status == 502
    assert caught.value.slug == "upstream-credentials-rejected"
    assert "acme" in (caught.value.detail or "")
    assert "credentials" in (caught.value.detail or "")
    assert provider.calls == [False, True]
    assert len(upstream.seen) == 2
    [event] = [e for e in logs if e["event"] == "upstream.credentials_rejected"]
    assert event["log_level"] == "error"
    assert event["tenant"] == "t1"
    assert event["backend"] == "acme"


class FailingProvider(Provider):
    async def __call__(self, request: CredentialsRequest) -> Credentials:
        self.calls.append(request.refused is not None)
        raise RuntimeError("vault sealed")


async def test_calls_refused_unsent_log_the_redacted_url(make_client: Any) -> None:
    """Deadline spent, circuit open, credentials failing: nothing is sent, and the one log line
    still names the URL, with its sensitive query values redacted."""
    port = closed_port()  # never contacted
    url = f"http://127.0.0.1:{port}/things?q=x&apikey=k1"
    loop = asyncio.get_running_loop()
    late = bound(await make_client(), deadline=loop.time() - 1)
    broken = await make_client()
    broken.breaker = CircuitBreaker(1, 30.0, name="acme")
    broken.breaker.record_failure()
    sealed = bound(await make_client(FailingProvider()))
    cases = [
        (late, UpstreamTimeout, "deadline exhausted before sending"),
        (bound(broken), CircuitOpen, "circuit open"),
        (sealed, RuntimeError, "credentials unavailable: RuntimeError"),
    ]
    for upstream_call, error, reason in cases:
        with capture_logs() as logs, pytest.raises(error):
            await upstream_call.request("GET", url)
        [line] = calls(logs)
        assert line["url"] == f"http://127.0.0.1:{port}/things?q=x&apikey={REDACTED}"
        assert (line["status"], line["attempt"], line["error"]) == (None, 1, reason)


async def test_breaker_opens_refuses_then_half_open_probe_closes(
    serve: Any, make_client: Any
) -> None:
    """After threshold failures calls are refused unsent (503, Retry-After); a probe recloses."""
    upstream = Upstream(reply(500), reply(500), reply(200))
    base = await serve(upstream)
    client = await make_client()
    now = [1000.0]
    client.breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0], name="acme")
    upstream_call = bound(client)
    for _ in range(2):
        with pytest.raises(UpstreamServerError):
            await upstream_call.request("POST", base + "jobs")
    assert client.breaker.state is BreakerState.OPEN
    with capture_logs() as logs, pytest.raises(CircuitOpen) as caught:
        await upstream_call.request("GET", base + "jobs")
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": "10"}
    assert len(upstream.seen) == 2  # nothing was sent
    [line] = calls(logs)
    assert line["error"] == "circuit open"
    assert line["attempt"] == 1
    now[0] += 10
    assert client.breaker.state is BreakerState.HALF_OPEN
    assert (await upstream_call.request("GET", base + "jobs")).status == 200
    assert client.breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through() -> None:
    """While the half-open probe is in flight, other calls are refused; a failed probe reopens."""
    now = [0.0]
    breaker = CircuitBreaker(1, 5.0, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 5.0
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    breaker.record_success()  # a straggler's success does not close an open breaker
    assert breaker.state is BreakerState.OPEN


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


def test_retry_after_reads_seconds_and_gmt_dates_only() -> None:
    """Delta-seconds and HTTP-dates are read; a date with no zone, or garbage, is not (the same
    reading for upstream answers and for subscribers')."""
    assert wire.retry_after_seconds(" 7 ") == 7.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (wire.retry_after_seconds(soon) or 0) <= 30
    assert wire.retry_after_seconds("Mon, 23 Nov 2026 10:00:00 -0000") is None
    assert wire.retry_after_seconds("soon") is None
    assert wire.retry_after_seconds(None) is None


@given(
    st.one_of(
        st.none(),
        st.text(),
        st.from_regex(r"\s*[0-9]{1,400}\s*", fullmatch=True),
        st.text(st.characters(categories=["Nd", "No", "Zs"])),
        st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
        st.from_regex(r"\w{3}, [0-9]{1,3} \w{3} -?[0-9]{1,6} [0-9:]{0,9} [A-Z+0-9-]{0,6}"),
    )
)
@example("²")  # a 429 from a subscriber said this, and the attempt crashed
@example("9" * 5000)  # past int()'s digit limit
@example("0" * 30 + "5")
@example("Fri, 31 Dec 9999 23:59:59 GMT")
@example("Mon, 01 Jan 0000 00:00:00 GMT")
@example("Mon, 01 Jan 1 00:00:00 +9999")
def test_retry_after_never_raises_and_stays_in_bounds(value: str | None) -> None:
    """Any header text reads as None or a delay between 0 and RETRY_AFTER_MAX; never an error."""
    seconds = wire.retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= wire.RETRY_AFTER_MAX


def test_retry_after_reads_ascii_digits_only_and_caps_huge_ones() -> None:
    """Unicode digits are not delta-seconds; leading zeros are; a huge value is the cap."""
    assert wire.retry_after_seconds("²") is None
    assert wire.retry_after_seconds("٣") is None
    assert wire.retry_after_seconds("0005") == 5.0
    assert wire.retry_after_seconds("9" * 5000) == wire.RETRY_AFTER_MAX
    assert wire.retry_after_seconds("Fri, 31 Dec 9999 23:59:59 GMT") == wire.RETRY_AFTER_MAX


def test_upstream_modules_use_only_each_others_public_names() -> None:
    """Issue 14: no module of the package imports another's private names or reaches into an
    object's private attributes other than its own (`self._x`)."""
    package = Path(gateway.upstream.__file__).parent
    trespass = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if a.name.startswith("_")]
                names = [n for n in names if not n.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                own = isinstance(node.value, ast.Name) and node.value.id == "self"
                names = [] if own or node.attr.startswith("__") else [node.attr]
            else:
                continue
            trespass += [f"{path.name}:{node.lineno}: {name}" for name in names]
    assert trespass == []


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


async def test_remembered_redaction_redone_when_secrets_change(serve: Any) -> None:
    """The same URL object, redacted again after a secret it holds became known, hides it."""
    secrets = SecretRegistry()
    client = UpstreamClient(
        "acme",
        policy=FAST,
        credentials=Provider(),
        metrics=UpstreamMetrics(CollectorRegistry()),
        secrets=secrets,
    )
    url = URL("https://api.example/items/ITEM-SECRET-42")
    assert client.attempt_log.redacted(url) == str(url)
    assert client.attempt_log.redacted(url) == str(url)
    secrets.add("ITEM-SECRET-42")
    assert client.attempt_log.redacted(url) == f"https://api.example/items/{REDACTED}"
    assert client.attempt_log.redacted(URL(str(url))) == f"https://api.example/items/{REDACTED}"


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
