"""The listening socket and what a client may hold of it: slow, idle and too many connections, and
aiohttp's own parser refusals answered as problem documents.

aiohttp's server has a keep-alive timeout and parser limits, but no header or body timeout and no
connection cap; and it answers a request it cannot parse in text/plain after logging the raw input
(a caller key included). `EdgeSite` listens like `web.TCPSite`, with `EdgeHandler`, aiohttp's own
protocol (`web.RequestHandler`) plus those. `track_requests`, a middleware of the app, tells the
handler when a request's headers are in and when its handler is done, so that no timer runs while
the gateway, not the client, is the one working (an upstream call, say).
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import resource
import time
import uuid
from http import HTTPStatus
from typing import cast

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler
from yarl import URL

from gateway.middleware import REQUEST_ID_HEADER
from gateway.problems import HTTP_STATUS_SLUGS, PROBLEM_CONTENT_TYPE, ProblemError
from gateway.settings import ServerSettings

__all__ = ["EdgeHandler", "EdgeSite", "reserve_descriptors", "track_requests"]

log = structlog.get_logger("gateway.server")

# Where a connection is: what it is waiting for decides which timer runs.
_HEAD = 0  # a request's headers, from the client (headers_timeout)
_BODY = 1  # its handler runs and waits on a body the client has not finished (body_idle_timeout)
_BUSY = 2  # its handler runs, the body is in: the gateway is working, nothing times out
_DRAIN = 3  # its handler is done before the body was in: aiohttp reads the rest, then closes
_IDLE = 4  # between requests: aiohttp's keep-alive timer

FD_RESERVE = 1024  # descriptors besides client connections: store, upstream pools, webhooks, logs
REFUSAL_LOG_INTERVAL = 10.0  # one log line per interval while connections are refused
RETRY_AFTER_FULL = 1  # seconds; connections free up as fast as requests end
TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message; no class of its own
# A parser error's reason (llhttp's words, before the quoted input) when it is plain prose: no
# digits, quotes or underscores, so it cannot carry the request's data.
_PLAIN_REASON = re.compile(r"^[A-Za-z][A-Za-z ,.-]{2,79}$")


class _Gate:
    """The connections one site holds open, against `max_connections`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL:  # a flood must not flood the log too
            log.warning("server.connections_refused", refused=self._refused, limit=self.limit)
            self._logged_at, self._refused = now, 0
        return False

    def release(self) -> None:
        self.open -= 1


def _raw_response(problem: ProblemError) -> bytes:
    """A whole HTTP/1.1 answer, for a connection no request handler owns."""
    request_id = str(uuid.uuid4())
    body = orjson.dumps(problem.to_body(instance=None, request_id=request_id))
    headers = {
        "Content-Type": PROBLEM_CONTENT_TYPE,
        "Content-Length": str(len(body)),
        "Date": email.utils.formatdate(usegmt=True),
        REQUEST_ID_HEADER: request_id,
        "Connection": "close",
        **problem.headers,
    }
    head = f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + body


def _problem(status: int, detail: str) -> ProblemError:
    slug, title = HTTP_STATUS_SLUGS[status]
    return ProblemError(status, slug, title, detail)


class EdgeHandler(web.RequestHandler):
    """aiohttp's HTTP/1.1 protocol for one connection, with header and body timeouts, a share of
    the site's connection cap, and its parser's refusals answered as problems."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        settings: ServerSettings,
        gate: _Gate,
    ) -> None:
        super().__init__(
            manager,
            loop=loop,
            # None, as web.run_app(access_log=None) passes it: the app logs `http.request` itself.
            access_log=None,  # type: ignore[arg-type]
            keepalive_timeout=settings.keepalive_timeout,
            max_line_size=settings.max_line_size,
            max_field_size=settings.max_field_size,
            max_headers=settings.max_headers,
        )
        self._settings = settings
        self._gate = gate
        self._clock = loop
        self._admitted = False
        self._phase = _HEAD
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._payload: StreamReader | None = None
        self._held = False  # reading paused: the handler is behind, not the client
        self._head_bytes = 0  # of the current request's head, received so far
        self._first_line = bytearray()  # the head's first line, to tell 414 from 431
        self._first_line_done = False

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._gate.admit():
            detail = f"the gateway holds its limit of {self._gate.limit} connections; retry shortly"
            refusal = ProblemError(
                503,
                "too-many-connections",
                "Service unavailable",
                detail,
                headers={"Retry-After": str(RETRY_AFTER_FULL)},
            )
            cast(asyncio.Transport, transport).write(_raw_response(refusal))
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        # Until the first request's headers are in, the headers timer alone runs (from now).
        self.keep_alive(True)  # public way to cancel aiohttp's idle timer; it re-arms it after
        self._arm(self._settings.headers_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if data:
            if self._phase == _IDLE:  # a new request on a kept-alive connection
                self._phase = _HEAD
                self._head_bytes = 0
                self._first_line.clear()
                self._first_line_done = False
                self.keep_alive(True)  # the request has begun: aiohttp's idle timer must not cut it
                self._arm(self._settings.headers_timeout)
            if self._phase == _HEAD:
                self._note_head(data)
        super().data_received(data)
        if data and self._phase in (_BODY, _DRAIN):
            assert self._payload is not None
            if self._payload.is_eof():
                self._phase = _BUSY if self._phase == _BODY else _IDLE
                self._cancel()
            elif self._phase == _BODY:
                self._deadline = self._clock.time() + self._settings.body_idle_timeout

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel()
        if not self._admitted:
            return  # aiohttp never saw this connection
        self._admitted = False
        self._gate.release()
        super().connection_lost(exc)

    # Flow control: aiohttp stops reading while the handler has not consumed what came in. The
    # client cannot send then, so body idleness is not counted until reading resumes.

    def pause_reading(self) -> None:
        self._held = True
        super().pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._held:
            self._held = False
            self._deadline = self._clock.time() + self._settings.body_idle_timeout
        super().resume_reading(resume_parser)

    # -- told by track_requests -------------------------------------------------------------------

    def request_started(self, payload: StreamReader) -> None:
        """The request's headers are parsed and its handler runs."""
        self._payload = payload
        if payload.is_eof():
            self._phase = _BUSY
            self._cancel()
        else:
            self._phase = _BODY
            self._arm(self._settings.body_idle_timeout)

    def request_done(self) -> None:
        """Its handler returned (its answer is being written)."""
        self._cancel()
        done = self._payload is None or self._payload.is_eof()
        self._phase = _IDLE if done else _DRAIN

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # aiohttp calls this once each answer is written, including those made before the app's
        # middlewares run (a refused Expect): that request is over, its headers timer too.
        if self._phase == _HEAD:
            self._phase = _IDLE
            self._cancel()
        super().log_access(request, response, time)

    # -- aiohttp's refusals -----------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (or whose handler escaped every
        middleware): a problem document, logged without the request's content, which may hold a
        caller key. aiohttp closes the connection after it."""
        self._phase = _BUSY
        self._cancel()
        if request.writer.output_size > 0:  # as aiohttp's own: too late to answer anything
            raise ConnectionError("the response was already started; it cannot be replaced")
        request_id = str(uuid.uuid4())
        if isinstance(exc, HttpProcessingError):
            problem = self._refusal(exc)
            log.info(
                "http.refused", status=problem.status, detail=problem.detail, request_id=request_id
            )
        else:  # a bug: the app's middlewares answer every error of a handler
            problem = ProblemError(
                500,
                "internal-error",
                "Internal server error",
                "the gateway failed to answer; quote the request id to its operators",
            )
            log.error("http.unhandled_error", request_id=request_id, exc_info=exc)
        response = web.Response(
            body=orjson.dumps(problem.to_body(instance=None, request_id=request_id)),
            status=problem.status,
            content_type=PROBLEM_CONTENT_TYPE,
            headers={REQUEST_ID_HEADER: request_id},
        )
        response.force_close()
        return response

    def _refusal(self, exc: HttpProcessingError) -> ProblemError:
        settings = self._settings
        if isinstance(exc, LineTooLong):
            if self._request_line_too_long():
                detail = f"the request line is longer than {settings.max_line_size} bytes"
                return _problem(414, detail)
            detail = f"a header field is longer than {settings.max_field_size} bytes"
            return _problem(431, detail)
        if isinstance(exc, BadHttpMessage) and exc.message == TOO_MANY_HEADERS:
            return _problem(431, f"the request has more than {settings.max_headers} header fields")
        reason = exc.message.partition(":")[0].strip()
        detail = "the request is not valid HTTP/1.1"
        if _PLAIN_REASON.match(reason):
            detail += f" ({reason})"
        return _problem(400, detail)

    def _note_head(self, data: bytes) -> None:
        """Keep the start of the request line: a LineTooLong is either it (414) or a header (431),
        and aiohttp's exception does not say which."""
        self._head_bytes += len(data)
        if self._first_line_done:
            return
        if not self._first_line:
            data = data.lstrip(b"\r\n")  # blank lines before a request are allowed
        line, newline, _ = data.partition(b"\n")
        room = self._settings.max_line_size + 64 - len(self._first_line)
        self._first_line += line[: max(room, 0)]
        self._first_line_done = bool(newline)

    def _request_line_too_long(self) -> bool:
        target = self._first_line.split(b" ")[1:2]  # method SP target SP version
        return len(target[0] if target else self._first_line) > self._settings.max_line_size

    # -- timers -----------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._deadline = self._clock.time() + seconds
        if self._timer is not None and self._timer.when() > self._deadline:
            self._cancel()
        if self._timer is None:
            self._timer = self._clock.call_at(self._deadline, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        # Deadlines move on with every byte; the timer is moved only when it fires early.
        self._timer = None
        if self._phase not in (_HEAD, _BODY) or self.transport is None:
            return
        if self._phase == _BODY and self._held:
            self._deadline = self._clock.time() + self._settings.body_idle_timeout
        if self._clock.time() < self._deadline:
            self._timer = self._clock.call_at(self._deadline, self._expire)
            return
        if self._phase == _HEAD:
            self._headers_timed_out()
        else:
            self._body_timed_out()

    def _headers_timed_out(self) -> None:
        limit = self._settings.headers_timeout
        log.info("http.timeout", waiting_for="headers", limit_s=limit, received=self._head_bytes)
        if self._head_bytes and self.transport is not None:
            # A request had begun, and no handler owns the connection yet: a 408 says why it ends.
            # A connection that sent nothing is closed silently: a client about to reuse it could
            # take a 408 for the answer to its next request.
            detail = f"the request's headers did not arrive within {limit:g} s"
            self.transport.write(_raw_response(_problem(408, detail)))
        self.force_close()

    def _body_timed_out(self) -> None:
        limit = self._settings.body_idle_timeout
        log.info("http.timeout", waiting_for="body", limit_s=limit)
        # The handler owns the answer: its read fails with a 408 problem (so the request is logged
        # as one, and spooled files are removed) and the connection closes under it, since the
        # client is not listening either. Writing from here could interleave with its answer.
        detail = f"no byte of the request's body arrived for {limit:g} s"
        assert self._payload is not None
        self._payload.set_exception(_problem(408, detail))
        self.force_close()


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection's `EdgeHandler` when a request runs; the app's outermost middleware."""
    protocol = request.protocol
    if not isinstance(protocol, EdgeHandler):  # served by another site (the test client's)
        return await handler(request)
    protocol.request_started(request.content)
    try:
        return await handler(request)
    finally:
        protocol.request_done()


class EdgeSite(web.BaseSite):
    """What `web.TCPSite` does, with `EdgeHandler`s for the runner's app and `settings`' limits.
    `settings.port` 0 picks a free port (`port` says which, once started)."""

    __slots__ = ("_port", "_reuse_port", "_settings")

    def __init__(
        self, runner: web.BaseRunner, settings: ServerSettings, *, reuse_port: bool = False
    ) -> None:
        super().__init__(runner)
        self._settings = settings
        self._reuse_port = reuse_port
        self._port = settings.port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._settings.host, port=self._port))

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()
        gate = _Gate(self._settings.max_connections)

        def protocol() -> EdgeHandler:
            return EdgeHandler(manager, loop=loop, settings=self._settings, gate=gate)

        self._server = server = await loop.create_server(
            protocol,
            self._settings.host,
            self._settings.port,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        self._port = server.sockets[0].getsockname()[1]


def reserve_descriptors(max_connections: int) -> None:
    """Raise this process's soft limit on open files to fit `max_connections` and the rest, so
    that the cap, not EMFILE, is what a flood of connections meets (systemd's soft default is
    1024). Up to the hard limit only; a shortfall is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < wanted:
        log.warning(
            "server.descriptors_short", max_connections=max_connections, open_files_limit=raised
        )
