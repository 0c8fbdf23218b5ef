"""What the session does to each attempt besides sending it: count what it sent, keep aiohttp
from resending on its own, and keep credentials from following a redirect to another origin."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

import aiohttp
import attrs
from yarl import URL

from gateway.upstream.values import UpstreamCall
from gateway.values import Credentials

__all__ = ["AttemptStats", "ConnectionDropped", "count_sent", "middlewares_for"]


@attrs.define
class AttemptStats:
    """Passed as `trace_request_ctx`: the session's trace config counts what one attempt sent."""

    bytes_sent: int = 0


async def count_sent(
    session: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    params: aiohttp.TraceRequestChunkSentParams,
) -> None:
    stats = ctx.trace_request_ctx
    if isinstance(stats, AttemptStats):
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


def middlewares_for(
    call: UpstreamCall, url: URL, creds: Credentials
) -> tuple[aiohttp.ClientMiddlewareType, ...]:
    """Only the middlewares this call needs: each costs a little on every request."""
    chosen: tuple[aiohttp.ClientMiddlewareType, ...] = () if call.idempotent else (_send_once,)
    # aiohttp drops Authorization on a cross-origin redirect itself; other credentials need us.
    others = [name for name in creds.headers if name.lower() != "authorization"]
    return (*chosen, _credentials_guard(url.origin(), others)) if others else chosen
