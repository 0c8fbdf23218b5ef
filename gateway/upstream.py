"""The one instrumented HTTP client through which the gateway calls third-party backends.

One `UpstreamClient` (one persistent `ClientSession`) per backend, for the life of the app. A
backend plugin gets a `BoundUpstream` per caller request (`client.bind(...)`), which knows the
tenant, the request id and the caller's deadline, and sends through it:

- credentials are asked of the plugin for every attempt and merged over the request (a caller's
  `Authorization` never goes upstream); `X-Request-ID` is always sent;
- every attempt (every request actually sent, and every call refused before sending) writes exactly
  one `upstream.call` log line, with the URL redacted and never a body or a header value;
- idempotent calls are retried on connection errors, timeouts, 5xx and 429, with capped exponential
  backoff and full jitter (or the upstream's `Retry-After`), within the caller's deadline;
- a per-backend circuit breaker refuses calls, without sending anything, while the backend fails;
- whatever goes wrong reaches the caller as a `ProblemError` subclass defined here.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
import attrs
import orjson
import structlog
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway import __version__, wire
from gateway.metrics import UpstreamMetrics
from gateway.problems import ProblemError
from gateway.redaction import SecretRegistry, redact_url, strip_url_queries
from gateway.values import Credentials

__all__ = [
    "BoundUpstream",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpen",
    "CredentialsProvider",
    "CredentialsRequest",
    "UpstreamClient",
    "UpstreamCredentialsRejected",
    "UpstreamError",
    "UpstreamPolicy",
    "UpstreamRejected",
    "UpstreamResponse",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

_log = structlog.get_logger("gateway.upstream")

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Headers a caller (or a plugin passing the caller's headers on) may never set upstream: the
# gateway authenticates with its own credentials, from the credentials provider only.
_CALLER_FORBIDDEN_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
_REASON_MAX: Final = 300
_ERROR_MAX: Final = 200
_EXCERPT_BYTES: Final = 64 * 1024  # of a failed streamed response, to find the upstream's reason
_HALF_OPEN_BUSY_RETRY_AFTER: Final = 1.0


_positive = attrs.validators.gt(0.0)
_not_negative = attrs.validators.ge(0.0)
_at_least_one = attrs.validators.ge(1)


@attrs.frozen
class UpstreamPolicy:
    """Timeouts, retries and circuit breaking of one backend's client."""

    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    attempt_timeout: float = attrs.field(default=30.0, validator=_positive)  # one attempt, total
    deadline: float = attrs.field(default=60.0, validator=_positive)  # one caller request, all in
    max_attempts: int = attrs.field(default=3, validator=_at_least_one)
    # Full jitter: sleep uniform(0, min(cap, base * 2**(n-1))) before attempt n+1.
    backoff_base: float = attrs.field(default=0.1, validator=_not_negative)
    backoff_cap: float = attrs.field(default=2.0, validator=_not_negative)
    retry_after_cap: float = attrs.field(default=10.0, validator=_not_negative)  # longer: fail now
    breaker_threshold: int = attrs.field(default=5, validator=_at_least_one)  # consecutive failures
    breaker_reset: float = attrs.field(default=30.0, validator=_positive)  # open, before a probe
    max_connections: int = attrs.field(default=100, validator=_at_least_one)  # per backend


# --- errors the caller sees -------------------------------------------------------------------


class UpstreamError(ProblemError):
    """Base of the problems raised for an upstream call; `backend` names the backend."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        backend: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, slug, title, detail, headers=headers)
        self.backend = backend


class UpstreamTimeout(UpstreamError):
    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(
            504,
            "upstream-timeout",
            "Upstream timeout",
            f"backend {backend} did not answer within {seconds:.1f} s",
            backend=backend,
        )


class UpstreamUnavailable(UpstreamError):
    def __init__(self, backend: str, reason: str = "connection failed") -> None:
        super().__init__(
            502,
            "upstream-unavailable",
            "Upstream unavailable",
            f"backend {backend} could not be reached: {reason}",
            backend=backend,
        )


class UpstreamServerError(UpstreamError):
    def __init__(self, backend: str, upstream_status: int | None, reason: str = "") -> None:
        what = f"status {upstream_status}" if upstream_status is not None else "an invalid response"
        super().__init__(
            502,
            "upstream-error",
            "Upstream error",
            f"backend {backend} answered with {what}" + (f": {reason}" if reason else ""),
            backend=backend,
        )
        self.upstream_status = upstream_status


class UpstreamRejected(UpstreamError):
    """An upstream 4xx, passed on with the upstream's status and reason."""

    def __init__(
        self, backend: str, upstream_status: int, reason: str, retry_after: float | None = None
    ) -> None:
        headers = {"Retry-After": _retry_after_header(retry_after)} if retry_after else None
        super().__init__(
            upstream_status,
            "upstream-rejected",
            "Rejected by upstream",
            f"backend {backend} rejected the request ({upstream_status}): {reason}",
            backend=backend,
            headers=headers,
        )
        self.upstream_status = upstream_status
        self.reason = reason


class UpstreamCredentialsRejected(UpstreamError):
    """The upstream refused the *gateway's* credentials for the tenant; not the caller's fault."""

    def __init__(self, backend: str, upstream_status: int) -> None:
        super().__init__(
            502,
            "upstream-credentials-rejected",
            "Upstream rejected the gateway's credentials",
            f"backend {backend} rejected the gateway's credentials for this tenant "
            f"({upstream_status})",
            backend=backend,
        )
        self.upstream_status = upstream_status


class CircuitOpen(UpstreamError):
    """Refused without calling the backend, because it has been failing."""

    def __init__(self, retry_after: float, backend: str = "") -> None:
        super().__init__(
            503,
            "circuit-open",
            "Backend temporarily unavailable",
            f"backend {backend or '(unnamed)'} is failing; calls to it are suspended",
            backend=backend,
            headers={"Retry-After": _retry_after_header(retry_after)},
        )
        self.retry_after = retry_after


def _retry_after_header(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds or 0)))


# --- circuit breaker --------------------------------------------------------------------------


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_BREAKER_GAUGE: Final = {
    BreakerState.CLOSED: 0.0,
    BreakerState.HALF_OPEN: 1.0,
    BreakerState.OPEN: 2.0,
}


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `reset_after` s lets one probe through.

    Failures are connection errors, timeouts and 5xx; any other answer (4xx included, 429 too)
    shows the backend is alive and counts as a success. A call that ends without a verdict
    (cancelled, credentials unavailable) must `release()` so that a half-open probe slot is freed.
    """

    def __init__(
        self,
        threshold: int,
        reset_after: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "",
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> None:
        state = self.state
        if state is BreakerState.CLOSED:
            return
        now = self._clock()
        if state is BreakerState.OPEN:
            raise CircuitOpen(self._opened_at + self.reset_after - now, self.name)
        # Half-open: one probe at a time; a probe stuck for longer than reset_after is presumed
        # lost, so that a leaked probe cannot keep the breaker shut for ever.
        if self._probe_started is not None and now - self._probe_started < self.reset_after:
            raise CircuitOpen(_HALF_OPEN_BUSY_RETRY_AFTER, self.name)
        self._state = BreakerState.HALF_OPEN
        self._probe_started = now

    def record_success(self) -> None:
        if self.state is BreakerState.OPEN:
            return  # a slow call begun before the breaker opened: no news of the present
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_started = None

    def record_failure(self) -> None:
        state = self.state
        if state is BreakerState.OPEN:
            return
        if state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """The call ended without telling anything about the backend's health."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_started = None

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._probe_started = None


# --- metrics ----------------------------------------------------------------------------------


# --- values -----------------------------------------------------------------------------------


@attrs.frozen
class CredentialsRequest:
    """What a backend is asked for credentials with, before every attempt: the request they are
    for (so that a key never goes to a host it does not belong to), the caller request's bound
    client (to fetch a token with), and the credentials the upstream has just refused with a 401
    (drop that token, not one another request fetched meanwhile)."""

    tenant: str
    config: Any
    method: str
    url: URL
    upstream: BoundUpstream
    refused: Credentials | None = None


CredentialsProvider = Callable[[CredentialsRequest], Awaitable[Credentials]]


@attrs.frozen
class UpstreamResponse:
    """A complete upstream answer (status 2xx, or one the plugin listed in `expect`)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")

    def json(self) -> Any:
        return orjson.loads(self.body)

    def text(self) -> str:
        match = re.search(r"charset=\"?([\w.:-]+)", self.headers.get("Content-Type", ""), re.I)
        try:
            return self.body.decode(match.group(1) if match else "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.body.decode("utf-8", errors="replace")


BodyFactory = Callable[[], Any]


@attrs.frozen
class _Call:
    """One `request()`/`stream()` call of a plugin, as prepared before its first attempt."""

    method: str
    url: URL  # with the plugin's params, before credentials
    operation: str
    headers: Mapping[str, str]  # the plugin's, without Authorization
    body: bytes | BodyFactory | None
    idempotent: bool
    expect: frozenset[int]


@attrs.define
class _AttemptStats:
    """Passed as `trace_request_ctx`: the session's trace config counts what one attempt sent."""

    bytes_sent: int = 0


@attrs.frozen
class _Failure:
    """Why an attempt did not produce an answer to return, and whether another may follow."""

    error: UpstreamError
    retryable: bool = False
    retry_after: float | None = None
    refresh: bool = False  # a 401: ask for fresh credentials and send once more
    refused: Credentials | None = None  # the credentials that got the 401


@attrs.define
class _Open:
    """A streamed 2xx response handed to the plugin; its log line is written when it is done."""

    response: aiohttp.ClientResponse
    fields: dict[str, Any]
    stats: _AttemptStats
    started: float
    seconds: float  # the attempt's timeout, which also bounds reading the body


# --- the client -------------------------------------------------------------------------------


async def _count_sent(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestChunkSentParams,
) -> None:
    stats = ctx.trace_request_ctx
    if isinstance(stats, _AttemptStats):
        stats.bytes_sent += len(params.chunk)


class ConnectionDropped(aiohttp.ClientConnectionError):
    """The connection broke during a call that must not be sent twice."""


async def _send_once(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """aiohttp resends a GET/PUT/DELETE once, unseen, when the connection drops; retries are
    this client's decision alone (a GET may delete upstream, and every attempt is logged), so a
    drop is re-raised as an error aiohttp does not resend."""
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise  # nothing was sent, and aiohttp does not resend it either
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise ConnectionDropped(str(exc) or type(exc).__name__) from exc


def _credentials_guard(origin: URL, names: Iterable[str]) -> aiohttp.ClientMiddlewareType:
    """Drop credential headers from redirected requests that leave the upstream's origin.

    aiohttp itself strips only `Authorization` on a cross-origin redirect; an `X-Api-Key` would be
    handed to whatever host the upstream redirects to (a CDN, say).
    """
    names = tuple(names)

    async def guard(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.url.origin() != origin:
            for name in names:
                request.headers.popall(name, None)
        return await handler(request)

    return guard


def _middlewares(
    call: _Call, url: URL, creds: Credentials
) -> tuple[aiohttp.ClientMiddlewareType, ...]:
    """Only the middlewares this call needs: each costs a little on every request."""
    chosen: list[aiohttp.ClientMiddlewareType] = []
    if not call.idempotent:
        chosen.append(_send_once)
    # aiohttp drops Authorization on a cross-origin redirect itself; other credentials need us.
    others = [name for name in creds.headers if name.lower() != "authorization"]
    if others:
        chosen.append(_credentials_guard(url.origin(), others))
    return tuple(chosen)


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
        self._credentials = credentials
        self._metrics = metrics
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None
        # Read at scrape time, so that the gauge shows OPEN turning HALF_OPEN with no call made;
        # through `self`, so that a breaker swapped in (tests inject a clock) is the one reported.
        metrics.breaker.labels(backend=backend).set_function(
            lambda: _BREAKER_GAUGE[self.breaker.state]
        )

    async def start(self) -> None:
        if self._session is not None:
            return
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(_count_sent)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.policy.max_connections),
            timeout=aiohttp.ClientTimeout(
                total=self.policy.attempt_timeout, connect=self.policy.connect_timeout
            ),
            trace_configs=[trace],
            # One session serves every tenant: cookies set for one must never reach another.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"integration-gateway/{__version__}"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def bind(
        self,
        *,
        tenant: str,
        config: Any,
        request_id: str,
        operation: str,
        deadline: float | None = None,
    ) -> BoundUpstream:
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

    # The retry loop, shared by request() and stream().

    async def _run(self, bound: BoundUpstream, call: _Call, *, streaming: bool) -> Any:
        loop = asyncio.get_running_loop()
        policy = self.policy
        attempt = 0  # requests sent (or refused), numbering the log lines
        tries = 0  # of the retry budget: the re-send after a 401 does not spend one
        refused: Credentials | None = None
        refreshed = False
        while True:
            attempt += 1
            if refused is None:
                tries += 1
            outcome = await self._attempt(
                bound, call, attempt, refused=refused, streaming=streaming
            )
            refused = None
            if not isinstance(outcome, _Failure):
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

    async def _attempt(
        self,
        bound: BoundUpstream,
        call: _Call,
        attempt: int,
        *,
        refused: Credentials | None,
        streaming: bool,
    ) -> UpstreamResponse | _Open | _Failure:
        if self._session is None:
            raise RuntimeError(f"the upstream client of {self.backend} is not started")
        loop = asyncio.get_running_loop()
        fields: dict[str, Any] = {
            "request_id": bound.request_id,
            "tenant": bound.tenant,
            "backend": self.backend,
            "operation": call.operation,
            "method": call.method,
            "url": redact_url(call.url, self._secrets),
            "status": None,
            "duration_ms": 0.0,
            "attempt": attempt,
            "bytes_sent": 0,
            "bytes_received": 0,
        }
        remaining = bound.deadline - loop.time()
        if remaining <= 0:
            self._emit(fields, "timeout", "deadline exhausted before sending")
            return _Failure(UpstreamTimeout(self.backend, 0.0))
        try:
            self.breaker.before_call()
        except CircuitOpen:
            # Nothing is sent, but operators still see each refused call.
            self._emit(fields, "circuit_open", "circuit open")
            raise
        try:
            creds = await self._credentials(
                CredentialsRequest(
                    bound.tenant, bound.config, call.method, call.url, bound, refused
                )
            )
        except Exception as exc:
            self.breaker.release()
            self._emit(
                fields, "credentials_error", f"credentials unavailable: {type(exc).__name__}"
            )
            raise
        except BaseException:
            self.breaker.release()
            raise
        self._secrets.add(*creds.secrets)
        url = call.url.update_query(creds.query) if creds.query else call.url
        fields["url"] = redact_url(url, self._secrets)
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        headers["X-Request-ID"] = bound.request_id
        headers.update(creds.headers)
        seconds = min(self.policy.attempt_timeout, remaining)
        stats = _AttemptStats()
        started = loop.time()
        response: aiohttp.ClientResponse | None = None
        handed_over = False
        try:
            body = call.body() if callable(call.body) else call.body  # fresh per attempt
            response = await self._session.request(
                call.method,
                url,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=seconds, connect=self.policy.connect_timeout),
                trace_request_ctx=stats,
                middlewares=_middlewares(call, url, creds),
            )
            status = response.status
            fields["status"] = status
            if streaming and 200 <= status < 300:
                self.breaker.record_success()
                handed_over = True
                return _Open(response, fields, stats, started, seconds)
            data = await (response.content.read(_EXCERPT_BYTES) if streaming else response.read())
        except TimeoutError:
            failure = _Failure(UpstreamTimeout(self.backend, seconds), retryable=True)
            return self._failed(fields, stats, started, "timeout", failure, "timeout")
        except aiohttp.ClientError as exc:
            failure = _Failure(
                UpstreamUnavailable(self.backend, type(exc).__name__), retryable=True
            )
            error = f"{type(exc).__name__}: {exc}"
            return self._failed(fields, stats, started, "connection_error", failure, error)
        except BaseException:
            self.breaker.release()
            raise
        finally:
            if response is not None and not handed_over:
                response.release()

        fields.update(
            duration_ms=_ms(loop.time() - started),
            bytes_sent=stats.bytes_sent,
            bytes_received=len(data),
        )
        if 200 <= status < 300 or status in call.expect:
            self.breaker.record_success()
            self._emit(fields, str(status), None, duration=loop.time() - started)
            return UpstreamResponse(status, response.headers, data)
        outcome = self._classify(status, response.headers, data)
        if outcome.refresh:
            outcome = attrs.evolve(outcome, refused=creds)
        if status >= 500:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # it answered: alive, whatever it thought of the request
        self._emit(fields, str(status), f"HTTP {status}", duration=loop.time() - started)
        return outcome

    def _classify(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> _Failure:
        if status == 401:
            return _Failure(UpstreamCredentialsRejected(self.backend, status), refresh=True)
        if status == 403:
            return _Failure(UpstreamCredentialsRejected(self.backend, status))
        retry_after = wire.retry_after_seconds(headers.get("Retry-After"))
        if status == 429:
            reason = self._reason(body)
            error = UpstreamRejected(self.backend, status, reason, retry_after)
            return _Failure(error, retryable=True, retry_after=retry_after)
        if 400 <= status < 500:
            return _Failure(UpstreamRejected(self.backend, status, self._reason(body)))
        if status >= 500:
            return _Failure(
                UpstreamServerError(self.backend, status), retryable=True, retry_after=retry_after
            )
        # 1xx/3xx that aiohttp did not resolve (a redirect without Location, 304 ...).
        return _Failure(UpstreamServerError(self.backend, status, "unexpected status"))

    def _reason(self, body: bytes) -> str:
        """The upstream's own explanation, shortened and scrubbed: it may echo our key or URL."""
        reason = ""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            reason = body[: _REASON_MAX * 4].decode("utf-8", errors="replace")
        else:
            reason = _reason_from_json(doc) or ""
        reason = " ".join(reason.split())
        if not reason:
            return "no reason given"
        return self._scrub(reason, _REASON_MAX)

    def _scrub(self, text: str, limit: int) -> str:
        text = strip_url_queries(self._secrets.scrub(text))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _failed(
        self,
        fields: dict[str, Any],
        stats: _AttemptStats,
        started: float,
        kind: str,
        failure: _Failure,
        error: str,
    ) -> _Failure:
        duration = asyncio.get_running_loop().time() - started
        self.breaker.record_failure()
        fields.update(duration_ms=_ms(duration), bytes_sent=stats.bytes_sent)
        self._emit(fields, kind, error, duration=duration)
        return failure

    def _emit(
        self, fields: dict[str, Any], status: str, error: str | None, duration: float | None = None
    ) -> None:
        """The attempt's one log line, and its metrics."""
        operation = fields["operation"]
        self._metrics.calls_by(self.backend, operation, status).inc()
        if duration is not None:
            self._metrics.latency_by(self.backend, operation).observe(duration)
        if error is None:
            _log.info("upstream.call", **fields)
        else:
            _log.warning("upstream.call", **fields, error=self._scrub(error, _ERROR_MAX))

    async def _finish_stream(self, opened: _Open, exc: BaseException | None) -> None:
        loop = asyncio.get_running_loop()
        duration = loop.time() - opened.started
        opened.fields.update(
            duration_ms=_ms(duration),
            bytes_sent=opened.stats.bytes_sent,
            # What arrived from upstream (decompressed, as the plugin reads it).
            bytes_received=opened.response.content.total_bytes,
        )
        if exc is None:
            self._emit(opened.fields, str(opened.fields["status"]), None, duration=duration)
            return
        if isinstance(exc, TimeoutError):
            kind, error = "timeout", "timeout while reading the body"
        elif isinstance(exc, aiohttp.ClientPayloadError):
            kind, error = "connection_error", f"{type(exc).__name__}: {exc}"
        else:
            # The plugin's own failure (or its caller going away): not the upstream's.
            kind, error = str(opened.fields["status"]), f"aborted: {type(exc).__name__}"
        self._emit(opened.fields, kind, error, duration=duration)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _reason_from_json(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return None
    for key in ("detail", "message", "error_description", "title", "error"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if key == "error" and isinstance(value, dict):  # {"error": {"message": ...}}
            return _reason_from_json(value)
    return None


class BoundUpstream:
    """What a backend plugin uses while it handles one caller request."""

    def __init__(
        self,
        client: UpstreamClient,
        *,
        tenant: str,
        config: Any,
        request_id: str,
        operation: str,
        deadline: float,
    ) -> None:
        self.client = client
        self.tenant = tenant
        self.config = config
        self.request_id = request_id
        self.operation = operation
        self.deadline = deadline

    async def request(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        expect: Collection[int] = (),
    ) -> UpstreamResponse:
        """Send, retrying as the policy allows; return a 2xx or `expect`ed answer, else raise.

        `data` as a zero-argument callable builds a fresh body (an `aiohttp.FormData`, say) for
        each attempt, so that a multipart upload can be retried when the plugin passes
        `idempotent=True`.
        """
        call = self._prepare(
            method, url, operation, params, json, data, headers, idempotent, expect
        )
        response: UpstreamResponse = await self.client._run(self, call, streaming=False)
        return response

    def stream(
        self,
        method: str,
        url: str,
        *,
        operation: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """A 2xx response whose body the plugin reads as it likes (`response.content`).

        Retries and the breaker apply until 2xx headers arrive; the attempt's log line is written
        when the context exits. Reading is bounded by the attempt's timeout (and the deadline).
        """
        call = self._prepare(method, url, operation, params, None, None, headers, idempotent, ())
        return self._stream(call)

    @asynccontextmanager
    async def _stream(self, call: _Call) -> AsyncIterator[aiohttp.ClientResponse]:
        opened: _Open = await self.client._run(self, call, streaming=True)
        try:
            yield opened.response
        except BaseException as exc:
            opened.response.close()  # possibly unread: do not return it to the pool
            await self.client._finish_stream(opened, exc)
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(self.client.backend, opened.seconds) from exc
            if isinstance(exc, aiohttp.ClientPayloadError):
                raise UpstreamUnavailable(self.client.backend, type(exc).__name__) from exc
            raise
        else:
            opened.response.release()
            await self.client._finish_stream(opened, None)

    def _prepare(
        self,
        method: str,
        url: str,
        operation: str | None,
        params: Mapping[str, str] | None,
        json: Any,
        data: bytes | BodyFactory | None,
        headers: Mapping[str, str] | None,
        idempotent: bool | None,
        expect: Collection[int],
    ) -> _Call:
        method = method.upper()
        target = URL(url)
        if not target.absolute or target.scheme not in ("http", "https"):
            raise ValueError("an upstream URL must be absolute http(s)")
        if params:
            target = target.extend_query(params)
        clean = {
            k: v for k, v in (headers or {}).items() if k.lower() not in _CALLER_FORBIDDEN_HEADERS
        }
        body: bytes | BodyFactory | None = data
        if json is not None:
            if data is not None:
                raise ValueError("pass either json or data, not both")
            body = orjson.dumps(json)
            if not any(k.lower() == "content-type" for k in clean):
                clean["Content-Type"] = "application/json"
        return _Call(
            method=method,
            url=target,
            operation=operation or self.operation,
            headers=clean,
            body=body,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            expect=frozenset(expect),
        )
