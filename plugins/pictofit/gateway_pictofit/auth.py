"""What the gateway sends PICTOFiT to be known as the tenant: an API key, or a fetched token.

One `Auth` per backend object (per app), holding each tenant's token. Credentials are asked for
with the request they are for: the key or token goes only to the service's own origin, never to
the token endpoint (which takes the password form instead) nor to a result file's host.

The older auth mode's token is fetched from `connect/token` through the gateway's own upstream
client (so the call is retried, logged as an `upstream.call` line and counted like any other; the
form with the password is a body, and bodies are never logged). It is reused until shortly before
it expires (`refresh_margin`), and dropped when the service answered 401 to it. However many
requests wait, one fetch runs at a time: the others find the new token when the lock is theirs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs
from yarl import URL

from gateway.plugin_api import (
    BoundUpstream,
    Credentials,
    CredentialsRequest,
    UpstreamCredentialsRejected,
    UpstreamRejected,
    UpstreamServerError,
)
from gateway_pictofit import NAME
from gateway_pictofit.config import PictofitConfig, TokenAuth

__all__ = ["Auth", "IssuedToken", "TokenCache", "clock", "fetch_token", "refresh_margin"]

_BEARER = "Bearer "

clock: Callable[[], float] = time.monotonic
"""The token cache's clock (module level so that tests can move time forward)."""


class Auth:
    """The tenants' credentials for one app's PICTOFiT backend."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenCache] = {}
        # tenant -> (its config, the key read, the other secrets, the credentials made of them):
        # an API key's credentials stay the same from attempt to attempt, so they are made once
        # and made again only when the key (a rotated secret) or the configuration changes.
        self._keyed: dict[str, tuple[PictofitConfig, str, frozenset[str], Credentials]] = {}

    def _cache(self, tenant: str) -> TokenCache:
        return self._tokens.setdefault(tenant, TokenCache())

    async def prepare(self, upstream: BoundUpstream[PictofitConfig]) -> None:
        """Fetch the token before a call's first request, if it is due (no-op with an API key).

        Done before, not inside, the request's attempt: a fetch inside an attempt would wait for
        the circuit breaker's half-open slot that attempt holds.
        """
        if upstream.config.token is not None:
            await self._token(upstream, drop=None)

    async def credentials(self, request: CredentialsRequest[PictofitConfig]) -> Credentials:
        config = request.config
        extra = config.known_secrets()
        if not _for_the_service(request, config):
            return Credentials(secrets=extra)
        if config.api_key is not None:
            # No token to renew: a refusal changes nothing, and a second 401 is the core's 502.
            key = config.api_key.reveal()
            known = self._keyed.get(request.tenant)
            if known is not None and known[0] is config and known[1] == key and known[2] == extra:
                return known[3]
            made = Credentials(headers={"Authorization": _BEARER + key}, secrets=extra | {key})
            self._keyed[request.tenant] = (config, key, extra, made)
            return made
        refused = request.refused.headers.get("Authorization", "") if request.refused else ""
        drop = refused.removeprefix(_BEARER) if refused.startswith(_BEARER) else None
        value = await self._token(request.upstream, drop=drop)
        return Credentials(headers={"Authorization": _BEARER + value}, secrets=extra | {value})

    async def _token(self, upstream: BoundUpstream[PictofitConfig], *, drop: str | None) -> str:
        async def fetch() -> tuple[str, float]:
            return await fetch_token(upstream)

        return (await self._cache(upstream.tenant).get(fetch, drop=drop)).value


def _for_the_service(request: CredentialsRequest[PictofitConfig], config: PictofitConfig) -> bool:
    """Whether the tenant's key belongs on the request: the service's origin, but not its token
    URL (which takes the password form instead)."""
    if config.token is not None and request.url.with_query(None) == URL(config.token.url):
        return False
    return request.goes_to(config.base_url)


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is replaced: 60 s, or a fifth of a short lifetime."""
    return min(60.0, lifetime * 0.2)


@attrs.frozen
class IssuedToken:
    value: str = attrs.field(repr=False)
    refresh_at: float  # clock() time after which it is replaced


class TokenCache:
    """One tenant's token."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._token: IssuedToken | None = None

    def _usable(self, drop: str | None) -> IssuedToken | None:
        token = self._token
        if token is None or token.value == drop or clock() >= token.refresh_at:
            return None
        return token

    async def get(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        drop: str | None = None,
    ) -> IssuedToken:
        """The current token, fetched if there is none or it is due; `drop` is one the service
        refused (a token another request fetched since is kept).

        `fetch` answers (token, lifetime in seconds).
        """
        usable = self._usable(drop)
        if usable is not None:
            return usable
        async with self._lock:
            # Whoever held the lock before may have fetched a fresh token already.
            usable = self._usable(drop)
            if usable is not None:
                return usable
            value, lifetime = await fetch()
            self._token = IssuedToken(value, clock() + lifetime - refresh_margin(lifetime))
            return self._token


def _form(auth: TokenAuth) -> Callable[[], aiohttp.FormData]:
    def build() -> aiohttp.FormData:
        # Multipart, as the doc's walkthrough sends it; a fresh one per attempt.
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("grant_type", "password")
        form.add_field("username", auth.username)
        form.add_field("password", auth.password.reveal())
        form.add_field("client_id", auth.client_id)
        form.add_field("client_secret", auth.client_secret.reveal())
        form.add_field("scope", auth.scope)
        return form

    return build


async def fetch_token(upstream: BoundUpstream[PictofitConfig]) -> tuple[str, float]:
    """Ask `connect/token` for a token; its refusal is the gateway's credential problem (502).

    It goes out without the tenant's Bearer: credentials are never given for the token URL.
    """
    config = upstream.config
    auth = config.token
    if auth is None:
        raise RuntimeError("fetch_token needs token auth")
    try:
        # A password grant has no effect besides issuing a token: safe to retry.
        answer = await upstream.request(
            "POST", auth.url, operation="connectToken", data=_form(auth), idempotent=True
        )
    except UpstreamRejected as exc:  # 400 invalid_client / invalid_grant / invalid_scope
        raise UpstreamCredentialsRejected(NAME, exc.upstream_status) from None
    try:
        body: Any = answer.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamServerError(NAME, answer.status, "the token answer has no access_token")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = config.assumptions.token_default_lifetime_s
    return token, float(lifetime)
