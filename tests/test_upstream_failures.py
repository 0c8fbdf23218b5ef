"""The instrumented upstream client's failures, against real aiohttp servers on loopback: timeouts,
refused connections and upstream refusals become problems, a 401 refreshes the credentials
once, calls refused unsent still log their (redacted) URL, and the circuit breaker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.plugin_api import Credentials, CredentialsRequest
from gateway.redaction import REDACTED
from gateway.upstream import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    UpstreamCredentialsRejected,
    UpstreamPolicy,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.upstream_clients import SECRET, Provider, bound, calls, make_client
from tests.upstream_fakes import Upstream, closed_port, reply, serve

__all__ = ["make_client", "serve"]  # the fixtures, for this module's tests


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
