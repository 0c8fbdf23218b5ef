"""A sink, as the core sees it: a delivery target other than HTTP (a message broker).

Plugins never import this module: `gateway.plugin_api` re-exports it. A sink is an object: a
`Sink` subclass, declared by its class attributes (`name`, the URL `schemes` it serves) and
registered by the plugin's `gateway_register_sinks(register)` hook, found under the entry point
group `gateway.sinks`. The core builds one instance per app, checks subscription URLs with
`check_url` (a 422 pointing at `url` when it raises), sends each attempt with `send`, and
`aclose()`s it when the app stops. Everything else of a delivery is the core's, as for webhooks:
the attempt recorded, retries by `[events] retry_schedule`, the subscription disabled after
failing `disable_after`, metrics and the log line.

The broker's host is held to `[events] allowed_targets` like a webhook's: the core checks the
URL's host at every attempt, and a sink opens connections only to the addresses
`SinkContext.resolve` returns (checked once per connection, so DNS rebinding cannot slip another
address in); `ConnectionPool` keeps one connection per broker. Credentials in a sink URL are
secrets: the core adds the password to the secrets scrubbed from logs and from the error texts it
records, and shows the URL without its userinfo.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import ClassVar, Generic, Protocol, TypeVar

import attrs
from yarl import URL

Resolve = Callable[[str, int], Awaitable[list[str]]]


class Connection(Protocol):
    """What a pool holds: a broker client's connection or channel, which knows when it closed."""

    @property
    def is_closed(self) -> bool: ...


K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=Connection)


@attrs.frozen
class SendOutcome:
    """What one attempt came to: delivered (`ok`), or the error to record and, when the target
    asked for it, how long to wait before the next try (`retry_after`, seconds).

    `status` and `excerpt` are the HTTP transport's (the answer's status and first bytes); a sink
    leaves them None."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None
    status: int | None = None
    excerpt: str | None = None

    @classmethod
    def delivered(cls) -> SendOutcome:
        return cls(ok=True)

    @classmethod
    def failed(cls, error: str, retry_after: float | None = None) -> SendOutcome:
        return cls(ok=False, error=error, retry_after=retry_after)


@attrs.frozen
class SinkContext:
    """What the core hands a sink: `resolve(host, port)` answers the addresses to connect to,
    checked against `[events] allowed_targets` (it raises when one is refused); `timeout` is
    `[events] attempt_timeout`, the most one `send` may take."""

    resolve: Resolve
    timeout: float


class Sink:
    """A delivery target, within one app. Subclass it, set the class attributes, register it."""

    name: ClassVar[str]
    schemes: ClassVar[frozenset[str]]
    """The URL schemes it serves (`nats`, `amqp`); http and https are the core's."""
    description: ClassVar[str] = ""

    def __init__(self, context: SinkContext) -> None:
        self.context = context

    def check_url(self, url: URL) -> None:
        """Raise ValueError saying what is wrong with a subscription URL of one of `schemes`
        (its host is already checked by the core); the message is answered to the caller, so it
        must not quote the URL's credentials."""

    async def send(
        self, target: URL, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> SendOutcome:
        """Deliver one event: `body` as the message, `headers` (the Standard Webhooks headers,
        `webhook-id` being `event_id`) as its headers, and answer once the broker has taken
        responsibility for it (acknowledged or confirmed) or failed. An exception counts as a
        failed attempt; the error text must not quote credentials."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the sink's connections when the app stops."""


class ConnectionPool(Generic[K, C]):
    """A sink's connections (or channels), one per key (a broker's address and credentials),
    shared by every subscription to it: opened by the first attempt that needs it while the others
    wait for it, and opened anew by the next attempt once it failed to open or has closed (the
    broker restarted, and the client gave up)."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[C]] = {}

    async def get(self, key: K, open_: Callable[[], Awaitable[C]]) -> C:
        task = self._tasks.get(key)
        if task is None or (task.done() and _unusable(task)):
            task = asyncio.ensure_future(open_())
            self._tasks[key] = task
        try:
            # Shielded: an attempt that times out does not cancel an opening others wait for.
            return await asyncio.shield(task)
        except BaseException:
            if self._tasks.get(key) is task and task.done():
                del self._tasks[key]
            raise

    async def close(self, close: Callable[[C], Awaitable[object]]) -> None:
        """Close every connection the pool opened (`close(connection)`), and forget them."""
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            if not task.done():
                task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await close(await task)


def _unusable(task: asyncio.Task[C]) -> bool:
    return task.cancelled() or task.exception() is not None or task.result().is_closed
