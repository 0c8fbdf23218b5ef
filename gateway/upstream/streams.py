"""Streamed attempts: a 2xx response handed to the plugin unread (`BoundUpstream.stream()`), and
its log line written once the plugin is done reading it."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Literal, Protocol

import aiohttp
import attrs

from gateway.upstream.attempt_log import AttemptLine, AttemptLog
from gateway.upstream.bound import BoundUpstream
from gateway.upstream.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.middlewares import AttemptStats
from gateway.upstream.values import UpstreamCall

__all__ = ["OpenStream", "StreamAttempt", "StreamRunner", "finish_stream"]


@attrs.define
class StreamAttempt:
    """A streamed 2xx response handed to the plugin (`run(..., streaming=True)`); `OpenStream`
    writes its log line when the plugin is done with it."""

    response: aiohttp.ClientResponse
    line: AttemptLine
    stats: AttemptStats
    started: float
    seconds: float  # the attempt's timeout, which also bounds reading the body


class StreamRunner(Protocol):
    """What an `OpenStream` needs of its client (the backend's `UpstreamClient`), named here so
    that this module does not import the client that imports it."""

    @property
    def backend(self) -> str: ...

    @property
    def attempt_log(self) -> AttemptLog: ...

    async def run(
        self, bound: BoundUpstream[Any], call: UpstreamCall, *, streaming: Literal[True]
    ) -> StreamAttempt: ...


def finish_stream(log: AttemptLog, opened: StreamAttempt, exc: BaseException | None) -> None:
    """A streamed attempt's log line and metrics, once the plugin is done with its body."""
    duration = asyncio.get_running_loop().time() - opened.started
    line = opened.line
    sent = opened.stats.bytes_sent
    # What arrived from upstream (decompressed, as the plugin reads it).
    received = opened.response.content.total_bytes
    if exc is None:
        log.emit(line, str(line.status), None, duration, sent, received)
        return
    if isinstance(exc, TimeoutError):
        kind, error = "timeout", "timeout while reading the body"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        kind, error = "connection_error", f"{type(exc).__name__}: {exc}"
    else:
        # The plugin's own failure (or its caller going away): not the upstream's.
        kind, error = str(line.status), f"aborted: {type(exc).__name__}"
    log.emit(line, kind, error, duration, sent, received)


class OpenStream:
    """`UpstreamClient.open_stream`'s block: a class, not an async generator, so that the module
    compiles (gateway.compiled)."""

    def __init__(self, client: StreamRunner, bound: BoundUpstream[Any], call: UpstreamCall) -> None:
        self._client = client
        self._bound = bound
        self._call = call
        self._opened: StreamAttempt | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self._opened = await self._client.run(self._bound, self._call, streaming=True)
        return self._opened.response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        opened = self._opened
        if opened is None:
            return
        client = self._client
        if exc is None:
            opened.response.release()
            finish_stream(client.attempt_log, opened, None)
            return
        opened.response.close()  # possibly unread: do not return it to the pool
        finish_stream(client.attempt_log, opened, exc)
        if isinstance(exc, TimeoutError):
            raise UpstreamTimeout(client.backend, opened.seconds) from exc
        if isinstance(exc, aiohttp.ClientPayloadError):
            raise UpstreamUnavailable(client.backend, type(exc).__name__) from exc
