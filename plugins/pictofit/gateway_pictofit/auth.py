"""What the gateway sends PICTOFiT to be known as the tenant: an API key, or a fetched token.

`gateway_upstream_credentials` gets no upstream client, yet in token mode it may have to fetch a
token. The plugin therefore binds the caller request's `BoundUpstream` in a context variable
(`bound`) for as long as it handles a call; the core asks for credentials from within that call's
task, so the hook finds the client there. Two more context flags, both per task:
- `anonymous()`: requests sent inside it carry no Bearer (the token request itself, and downloads
  from a host other than the service's, which must never receive the tenant's key);
- the serial of the token a request last sent, so that a 401 drops that token and not one another
  request fetched meanwhile.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.backend import Credentials
from gateway.upstream import BoundUpstream
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.token import TokenCache, fetch_token

__all__ = ["anonymous", "bound", "credentials", "prepare"]

_UPSTREAM: contextvars.ContextVar[BoundUpstream | None] = contextvars.ContextVar(
    "pictofit_upstream", default=None
)
_ANONYMOUS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pictofit_anonymous", default=False
)
_SENT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "pictofit_token_sent", default=None
)

_caches: weakref.WeakKeyDictionary[PictofitConfig, TokenCache] = weakref.WeakKeyDictionary()


def _cache(config: PictofitConfig) -> TokenCache:
    cache = _caches.get(config)
    if cache is None:
        cache = _caches[config] = TokenCache()
    return cache


@contextmanager
def bound(upstream: BoundUpstream) -> Iterator[None]:
    """Make `upstream` the client a token is fetched with while the plugin handles this call."""
    reset = _UPSTREAM.set(upstream)
    try:
        yield
    finally:
        _UPSTREAM.reset(reset)


@contextmanager
def anonymous() -> Iterator[None]:
    """Requests sent inside this block carry no credential."""
    reset = _ANONYMOUS.set(True)
    try:
        yield
    finally:
        _ANONYMOUS.reset(reset)


async def _token(config: PictofitConfig, *, refresh: bool) -> tuple[str, int]:
    upstream = _UPSTREAM.get()
    if upstream is None:
        raise RuntimeError("no upstream client is bound to fetch a PICTOFiT token with")
    cache = _cache(config)
    drop = None
    if refresh:
        # The token this request sent was refused; another request may already have replaced it.
        drop = _SENT.get() or cache.current_serial

    async def fetch() -> tuple[str, float]:
        with anonymous():
            return await fetch_token(upstream, config)

    token = await cache.get(fetch, drop=drop)
    _SENT.set(token.serial)
    return token.value, token.serial


async def prepare(config: PictofitConfig) -> None:
    """Fetch the token before the call's first request, if it is due (no-op with an API key).

    Done before, not inside, the request's attempt: a fetch inside an attempt would wait for the
    circuit breaker's half-open slot that attempt holds.
    """
    if config.token is not None:
        await _token(config, refresh=False)


async def credentials(config: PictofitConfig, *, refresh: bool) -> Credentials:
    extra = config.known_secrets()
    if _ANONYMOUS.get():
        return Credentials(secrets=extra)
    if config.api_key is not None:
        # No token to renew: `refresh` changes nothing, and a second 401 is the core's 502.
        key = config.api_key.reveal()
        return Credentials(headers={"Authorization": f"Bearer {key}"}, secrets=extra | {key})
    value, _ = await _token(config, refresh=refresh)
    return Credentials(headers={"Authorization": f"Bearer {value}"}, secrets=extra | {value})
