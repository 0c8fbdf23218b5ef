"""One client connection: aiohttp's HTTP/1.1 protocol with header and body timeouts, a share of
the site's connection cap, and its parser's refusals answered as problems. The app's middleware
(or `track_requests`, for another app) tells it when the app is the one working."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler

from gateway.logs import get_logger
from gateway.request_tracker import RequestTracker
from gateway.server.limits import Gate
from gateway.server.refusals import (
    parser_refusal,
    problem,
    raw_response,
    response,
    too_many_connections,
    unhandled,
)
from gateway.settings import ServerSettings

log = get_logger("gateway.server")

# Where a connection is: what it is waiting for decides which timer runs.
_HEAD = 0  # a request's headers, from the client (headers_timeout)
_BODY = 1  # its handler runs and waits on a body the client has not finished (body_idle_timeout)
_BUSY = 2  # its handler runs, the body is in: the gateway is working, nothing times out
_DRAIN = 3  # its handler is done before the body was in: aiohttp reads the rest, then closes
_IDLE = 4  # between requests: aiohttp's keep-alive timer


class EdgeHandler(web.RequestHandler, RequestTracker):
    """aiohttp's HTTP/1.1 protocol for one connection, with header and body timeouts, a share of
    the site's connection cap, and its parser's refusals answered as problems."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        settings: ServerSettings,
        gate: Gate,
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
            refusal = too_many_connections(self._gate.limit)
            cast(asyncio.Transport, transport).write(raw_response(refusal))
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
                self._phase = _BUSY if self._phase == _BODY else _IDLE  # its timer finds nothing
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

    # -- told by the app's edge (gateway.middleware.at_edge, or track_requests) --------------------

    def request_started(self, payload: StreamReader) -> None:
        """The request's headers are parsed and its handler runs."""
        self._payload = payload
        if payload.is_eof():
            # The headers timer is left to fire and find nothing to time: cancelling it and
            # arming a new one for the next request costs a timer handle and a heap push each.
            self._phase = _BUSY
        else:
            self._phase = _BODY
            self._arm(self._settings.body_idle_timeout)

    def request_done(self) -> None:
        """Its handler returned (its answer is being written)."""
        done = self._payload is None or self._payload.is_eof()
        self._phase = _IDLE if done else _DRAIN

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # aiohttp calls this once each answer is written, including those made before the app's
        # middlewares run (a refused Expect): that request is over, its headers timer too.
        if self._phase == _HEAD:
            self._phase = _IDLE
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
            refusal = parser_refusal(exc, self._settings, bytes(self._first_line))
            log.info(
                "http.refused", status=refusal.status, detail=refusal.detail, request_id=request_id
            )
        else:  # a bug: the app's middlewares answer every error of a handler
            refusal = unhandled()
            log.error("http.unhandled_error", request_id=request_id, exc_info=exc)
        answer = response(refusal, request_id)
        answer.force_close()
        return answer

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
            self.transport.write(raw_response(problem(408, detail)))
        self.force_close()

    def _body_timed_out(self) -> None:
        limit = self._settings.body_idle_timeout
        log.info("http.timeout", waiting_for="body", limit_s=limit)
        # The handler owns the answer: its read fails with a 408 problem (so the request is logged
        # as one, and spooled files are removed) and the connection closes under it, since the
        # client is not listening either. Writing from here could interleave with its answer.
        detail = f"no byte of the request's body arrived for {limit:g} s"
        assert self._payload is not None
        self._payload.set_exception(problem(408, detail))
        self.force_close()


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection's `EdgeHandler` when a request runs, for an app without the gateway's
    own middleware (which does this itself)."""
    protocol = request.protocol
    if not isinstance(protocol, EdgeHandler):  # served by another site (the test client's)
        return await handler(request)
    protocol.request_started(request.content)
    try:
        return await handler(request)
    finally:
        protocol.request_done()
