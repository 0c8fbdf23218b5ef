"""`UpstreamClient`: one backend's session, and the loop that sends a call's attempts.

Every attempt (every request actually sent, and every call refused before sending) writes exactly
one `upstream.call` log line and counts in the upstream metrics (`attempt_log`); a streamed one
when the plugin is done reading (`streams`). Idempotent calls are retried on connection errors,
timeouts, 5xx and 429, with capped exponential backoff and full jitter (or the upstream's
`Retry-After`), within the caller's deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal, Protocol, TypeVar, overload

import aiohttp
import attrs
from multidict import CIMultiDict

from gateway import __version__
from gateway.logs import get_logger
from gateway.metrics import UpstreamMetrics
from gateway.redaction import SecretRegistry
from gateway.upstream.attempt_log import AttemptLog
from gateway.upstream.bound import BoundUpstream, CredentialsProvider, CredentialsRequest
from gateway.upstream.breaker import BREAKER_GAUGE, CircuitBreaker
from gateway.upstream.errors import (
    CircuitOpen,
    UpstreamCredentialsRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.failures import Failure, classify
from gateway.upstream.middlewares import AttemptStats, count_sent, middlewares_for
from gateway.upstream.policy import UpstreamPolicy
from gateway.upstream.streams import OpenStream, StreamAttempt
from gateway.upstream.urls import UpstreamUrls
from gateway.upstream.values import UpstreamCall, UpstreamResponse
from gateway.values import Credentials

__all__ = ["AttemptTracer", "Outcome", "UpstreamClient"]

_log = get_logger("gateway.upstream")

C = TypeVar("C")

_EXCERPT_BYTES: Final = 64 * 1024  # of a failed streamed response, to find the upstream's reason
# A bodiless attempt's stats: sent on the session without the counting trace, so never counted
# into; shared rather than made per attempt.
_UNCOUNTED: Final = AttemptStats()


Outcome = UpstreamResponse | StreamAttempt | Failure


class AttemptTracer(Protocol):
    """Runs one attempt, `send(call)`, in a span of its own
    (`gateway.telemetry.clients.UpstreamTracer`), free to add headers to the call it sends;
    `after` is the previous attempt's outcome."""

    async def attempt(
        self,
        client: UpstreamClient,
        bound: BoundUpstream[Any],
        call: UpstreamCall,
        attempt: int,
        *,
        after: Outcome | None,
        send: Callable[[UpstreamCall], Awaitable[Outcome]],
    ) -> Outcome: ...


class UpstreamClient:
    """The client of one backend; lives as long as the app (`start()` on startup, `close()`)."""

    def __init__(
        self,
        backend: str,
        *,
        policy: UpstreamPolicy,
        credentials: CredentialsProvider,
        metrics: UpstreamMetrics,
        secrets: SecretRegistry,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.breaker = CircuitBreaker(policy.breaker_threshold, policy.breaker_reset, name=backend)
        # Public: the app points it at its backend's own method once the backend is built.
        self.credentials = credentials
        self._secrets = secrets
        # Public: the telemetry's spans show the URL redacted as the log line does.
        self.attempt_log: Final = AttemptLog(backend, metrics, secrets)
        self.urls: Final = UpstreamUrls()  # what `bound` parses and checks, remembered
        # A span per attempt when the app traces ([telemetry]): gateway.telemetry.clients.
        self.tracer: AttemptTracer | None = None
        self._session: aiohttp.ClientSession | None = None
        # The same pool, with the trace config that counts what a body sends: kept off bodiless
        # calls (most reads), which send nothing to count, since tracing costs every request a
        # few signal dispatches.
        self._traced: aiohttp.ClientSession | None = None
        # An attempt's timeout unless the caller's deadline is nearer: built once, not per attempt.
        self._timeout = aiohttp.ClientTimeout(
            total=policy.attempt_timeout, connect=policy.connect_timeout
        )
        # Read at scrape time, so that the gauge shows OPEN turning HALF_OPEN with no call made;
        # through `self`, so that a breaker swapped in (tests inject a clock) is the one reported.
        metrics.breaker.labels(backend=backend).set_function(
            lambda: BREAKER_GAUGE[self.breaker.state]
        )

    async def start(self) -> None:
        if self._session is not None:
            return
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(count_sent)
        connector = aiohttp.TCPConnector(limit=self.policy.max_connections)
        self._traced = self._new_session(connector, owner=False, trace_configs=[trace])
        self._session = self._new_session(connector, owner=True, trace_configs=None)

    def _new_session(
        self,
        connector: aiohttp.TCPConnector,
        *,
        owner: bool,
        trace_configs: list[aiohttp.TraceConfig] | None,
    ) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            connector_owner=owner,
            timeout=self._timeout,
            trace_configs=trace_configs,
            # One session serves every tenant: cookies set for one must never reach another.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"integration-gateway/{__version__}"},
        )

    async def close(self) -> None:
        if self._traced is not None:
            await self._traced.close()  # leaves the shared connector open
            self._traced = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def bind(
        self,
        *,
        tenant: str,
        config: C,
        request_id: str,
        operation: str,
        deadline: float | None = None,
    ) -> BoundUpstream[C]:
        """The client as one caller request uses it; `deadline` is an absolute `loop.time()`."""
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.policy.deadline
        return BoundUpstream(
            self,
            tenant=tenant,
            config=config,
            request_id=request_id,
            operation=operation,
            deadline=deadline,
        )

    @overload
    async def run(self, bound: BoundUpstream[Any], call: UpstreamCall) -> UpstreamResponse: ...

    @overload
    async def run(
        self, bound: BoundUpstream[Any], call: UpstreamCall, *, streaming: Literal[True]
    ) -> StreamAttempt: ...

    async def run(
        self, bound: BoundUpstream[Any], call: UpstreamCall, *, streaming: bool = False
    ) -> UpstreamResponse | StreamAttempt:
        """Send `call` for `bound`'s caller request: attempt after attempt, as the policy allows,
        until one answers 2xx (or a status in `call.expect`), which is returned read; else raise
        the last attempt's `UpstreamError` (or `CircuitOpen`, or the credentials provider's error).

        `streaming=True` is `open_stream`'s: a 2xx is returned unread, as a `StreamAttempt` whose
        log line is still to be written; plugins use `BoundUpstream.request()`/`.stream()`.
        """
        loop = asyncio.get_running_loop()
        policy = self.policy
        attempt = 0  # requests sent (or refused), numbering the log lines
        tries = 0  # of the retry budget: the re-send after a 401 does not spend one
        refused: Credentials | None = None
        refreshed = False
        outcome: Outcome | None = None
        while True:
            attempt += 1
            if refused is None:
                tries += 1
            if self.tracer is None:
                outcome = await self._attempt(
                    bound, call, attempt, refused=refused, streaming=streaming
                )
            else:
                outcome = await self.tracer.attempt(
                    self,
                    bound,
                    call,
                    attempt,
                    after=outcome,
                    send=self._sender(bound, attempt, refused=refused, streaming=streaming),
                )
            refused = None
            if not isinstance(outcome, Failure):
                return outcome
            if outcome.refresh and not refreshed:
                # A 401 means the request was not processed: safe to resend, whatever the method.
                refused, refreshed = outcome.refused, True
                continue
            if isinstance(outcome.error, UpstreamCredentialsRejected):
                _log.error(
                    "upstream.credentials_rejected",
                    request_id=bound.request_id,
                    tenant=bound.tenant,
                    backend=self.backend,
                    operation=call.operation,
                    status=outcome.error.upstream_status,
                )
            if not (outcome.retryable and call.idempotent and tries < policy.max_attempts):
                raise outcome.error
            if outcome.retry_after is not None:
                if outcome.retry_after > policy.retry_after_cap:
                    raise outcome.error
                delay = outcome.retry_after
            else:
                ceiling = min(policy.backoff_cap, policy.backoff_base * 2 ** (tries - 1))
                delay = random.uniform(0, ceiling)
            if loop.time() + delay >= bound.deadline:
                raise outcome.error  # the wait alone would exhaust the caller's deadline
            await asyncio.sleep(delay)

    def _sender(
        self,
        bound: BoundUpstream[Any],
        attempt: int,
        *,
        refused: Credentials | None,
        streaming: bool,
    ) -> Callable[[UpstreamCall], Awaitable[Outcome]]:
        """This attempt's `_attempt`, for a tracer to send with the headers it adds."""

        def send(call: UpstreamCall) -> Awaitable[Outcome]:
            return self._attempt(bound, call, attempt, refused=refused, streaming=streaming)

        return send

    async def _attempt(
        self,
        bound: BoundUpstream[Any],
        call: UpstreamCall,
        attempt: int,
        *,
        refused: Credentials | None,
        streaming: bool,
    ) -> UpstreamResponse | StreamAttempt | Failure:
        if self._session is None or self._traced is None:
            raise RuntimeError(f"the upstream client of {self.backend} is not started")
        now = asyncio.get_running_loop().time
        remaining = bound.deadline - now()
        log = self.attempt_log
        if remaining <= 0:
            line = log.line(bound, call, attempt, call.url)
            log.emit(line, "timeout", "deadline exhausted before sending")
            return Failure(UpstreamTimeout(self.backend, 0.0))
        try:
            self.breaker.before_call()
        except CircuitOpen:
            # Nothing is sent, but operators still see each refused call.
            log.emit(log.line(bound, call, attempt, call.url), "circuit_open", "circuit open")
            raise
        try:
            creds = await self.credentials(
                CredentialsRequest(
                    bound.tenant, bound.config, call.method, call.url, bound, refused
                )
            )
        except Exception as exc:
            self.breaker.release()
            line = log.line(bound, call, attempt, call.url)
            log.emit(line, "credentials_error", f"credentials unavailable: {type(exc).__name__}")
            raise
        except BaseException:
            self.breaker.release()
            raise
        for secret in creds.secrets:  # one by one: a native call each, `add(*...)` is generic
            self._secrets.add(secret)
        url = call.url.update_query(creds.query) if creds.query else call.url
        line = log.line(bound, call, attempt, url)
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        headers["X-Request-ID"] = bound.request_id
        headers.update(creds.headers)
        seconds = min(self.policy.attempt_timeout, remaining)
        timeout = self._timeout
        if seconds != timeout.total:
            timeout = aiohttp.ClientTimeout(total=seconds, connect=self.policy.connect_timeout)
        stats = _UNCOUNTED
        started = now()
        response: aiohttp.ClientResponse | None = None
        handed_over = False
        try:
            body = call.body() if callable(call.body) else call.body  # fresh per attempt
            if body is None:
                # Nothing to count: the untraced session, which never touches `_UNCOUNTED`. A call
                # of its own: one call passing both branches' arguments (`data=None`,
                # `trace_request_ctx`) cost 1.6 k instructions more per bodiless attempt.
                response = await self._session.request(
                    call.method,
                    url,
                    headers=headers,
                    timeout=timeout,
                    middlewares=middlewares_for(call, url, creds),
                )
            else:
                stats = AttemptStats()
                response = await self._traced.request(
                    call.method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=timeout,
                    trace_request_ctx=stats,
                    middlewares=middlewares_for(call, url, creds),
                )
            status = response.status
            line.status = status
            if streaming and 200 <= status < 300:
                self.breaker.record_success()
                handed_over = True
                return StreamAttempt(response, line, stats, started, seconds)
            data = await (response.content.read(_EXCERPT_BYTES) if streaming else response.read())
        except TimeoutError:
            self.breaker.record_failure()
            log.failed(line, stats, started, "timeout", "timeout")
            return Failure(UpstreamTimeout(self.backend, seconds), retryable=True)
        except aiohttp.ClientError as exc:
            self.breaker.record_failure()
            log.failed(line, stats, started, "connection_error", f"{type(exc).__name__}: {exc}")
            return Failure(UpstreamUnavailable(self.backend, type(exc).__name__), retryable=True)
        except BaseException:
            self.breaker.release()
            raise
        finally:
            if response is not None and not handed_over:
                response.release()

        duration = now() - started
        if 200 <= status < 300 or status in call.expect:
            self.breaker.record_success()
            log.emit(line, str(status), None, duration, stats.bytes_sent, len(data))
            return UpstreamResponse(status, response.headers, data)
        outcome = classify(self.backend, status, response.headers, data, self._secrets)
        if outcome.refresh:
            outcome = attrs.evolve(outcome, refused=creds)
        if status >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # it answered: alive, whatever it thought of the request
        log.emit(line, str(status), f"HTTP {status}", duration, stats.bytes_sent, len(data))
        return outcome

    def open_stream(
        self, bound: BoundUpstream[Any], call: UpstreamCall
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Send `call` as `run` does, up to a 2xx whose body the block reads (`response.content`);
        the attempt's log line is written when the block exits. A timeout or a broken connection
        while reading reaches the caller as `UpstreamTimeout`/`UpstreamUnavailable`."""
        return OpenStream(self, bound, call)
