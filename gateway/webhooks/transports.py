"""How one attempt reaches its target, by the URL's scheme: HTTP POSTs (the core's own) or an
installed sink (`gateway.sink`: a message broker). The delivery worker keeps all the bookkeeping
(attempts recorded, retries, disabling, metrics, the log line); a transport only sends and says
what came of it, as a `SendOutcome`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

import aiohttp
from yarl import URL

from gateway import __version__, wire
from gateway.logs import SECRETS
from gateway.settings import EventsSettings
from gateway.sink import SendOutcome, Sink, SinkContext
from gateway.webhooks.targets import HTTP_SCHEMES, TargetPolicy

EXCERPT_BYTES = 256
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


class HttpTransport:
    """Signed POSTs through one session whose connector resolves names only through the policy."""

    def __init__(self, settings: EventsSettings, targets: TargetPolicy) -> None:
        self.settings = settings
        self.targets = targets
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            # Names resolve through the policy at every new connection, never from a cache of
            # the connector's: the connection goes to addresses checked then.
            connector=aiohttp.TCPConnector(
                limit=self.settings.concurrency, resolver=self.targets, use_dns_cache=False
            ),
            timeout=aiohttp.ClientTimeout(total=self.settings.attempt_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": f"integration-gateway/{__version__} (webhooks)"},
        )

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        assert self._session is not None
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                excerpt = (await response.content.read(EXCERPT_BYTES)).decode(errors="replace")
                retry_after = None
                if status in RETRY_AFTER_STATUSES:
                    retry_after = wire.retry_after_seconds(response.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            return SendOutcome.failed(f"{type(exc).__name__}: {exc}"[:300])
        ok = 200 <= status < 300
        error = None if ok else f"HTTP {status}"
        return SendOutcome(ok, error, retry_after, status, excerpt or None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Transports:
    """The HTTP transport and the installed sinks, by the schemes they serve."""

    def __init__(self, settings: EventsSettings, targets: TargetPolicy) -> None:
        self.settings = settings
        self.targets = targets
        self.http = HttpTransport(settings, targets)
        self.sinks: dict[str, Sink] = {}

    def sink_context(self) -> SinkContext:
        return SinkContext(resolve=self._resolve, timeout=self.settings.attempt_timeout)

    def add_sink(self, sink: Sink) -> None:
        """Deliver to `sink` the URLs of its schemes, and accept subscriptions to them."""
        for scheme in sink.schemes:
            self.sinks[scheme] = sink
        self.targets.serve(frozenset(self.sinks))

    def check_url(self, url: str) -> None:
        """ValueError when the sink serving the URL's scheme finds it wrong (an http(s) URL is
        the policy's alone)."""
        sink = self.sinks.get(_scheme(url))
        if sink is not None:
            sink.check_url(_target(url))

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        scheme = _scheme(url)
        if scheme in HTTP_SCHEMES:
            return await self.http.send(url, body, headers)
        sink = self.sinks.get(scheme)
        if sink is None:  # its plugin was uninstalled since the subscription was made
            return SendOutcome.failed(f"no installed sink serves {scheme}: URLs")
        async with asyncio.timeout(self.settings.attempt_timeout):
            return await sink.send(_target(url), headers["webhook-id"], body, headers)

    async def _resolve(self, host: str, port: int) -> list[str]:
        return [found["host"] for found in await self.targets.resolve(host, port)]

    async def close(self) -> None:
        await self.http.close()  # the sinks are the app's, closed after the worker has stopped


def _scheme(url: str) -> str:
    return url.partition(":")[0].lower()


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> URL:
    """A sink URL, parsed once; its password is a secret, scrubbed from logs and errors."""
    target = URL(url)
    if target.password:
        SECRETS.add(target.password)
    return target
