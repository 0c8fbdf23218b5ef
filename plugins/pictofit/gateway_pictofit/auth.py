"""What the gateway sends PICTOFiT to be known as the tenant: an API key, or a fetched token.

One `Auth` per backend instance (per app), holding each tenant's token cache. Credentials are
asked for with the request they are for: the key or token goes only to the service's own origin,
never to the token endpoint (which takes the password form instead) nor to a result file's host.
"""

from __future__ import annotations

from yarl import URL

from gateway.plugin_api import BoundUpstream, Credentials, CredentialsRequest
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.token import TokenCache, fetch_token

__all__ = ["Auth"]

_BEARER = "Bearer "


class Auth:
    """The tenants' credentials for one app's PICTOFiT backend."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenCache] = {}

    def _cache(self, tenant: str) -> TokenCache:
        return self._tokens.setdefault(tenant, TokenCache())

    async def prepare(self, tenant: str, config: PictofitConfig, upstream: BoundUpstream) -> None:
        """Fetch the token before a call's first request, if it is due (no-op with an API key).

        Done before, not inside, the request's attempt: a fetch inside an attempt would wait for
        the circuit breaker's half-open slot that attempt holds.
        """
        if config.token is not None:
            await self._token(tenant, config, upstream, drop=None)

    async def credentials(self, request: CredentialsRequest) -> Credentials:
        config: PictofitConfig = request.config
        extra = config.known_secrets()
        if not _for_the_service(request, config):
            return Credentials(secrets=extra)
        if config.api_key is not None:
            # No token to renew: a refusal changes nothing, and a second 401 is the core's 502.
            key = config.api_key.reveal()
            return Credentials(headers={"Authorization": _BEARER + key}, secrets=extra | {key})
        refused = request.refused.headers.get("Authorization", "") if request.refused else ""
        drop = refused.removeprefix(_BEARER) if refused.startswith(_BEARER) else None
        value = await self._token(request.tenant, config, request.upstream, drop=drop)
        return Credentials(headers={"Authorization": _BEARER + value}, secrets=extra | {value})

    async def _token(
        self, tenant: str, config: PictofitConfig, upstream: BoundUpstream, *, drop: str | None
    ) -> str:
        async def fetch() -> tuple[str, float]:
            return await fetch_token(upstream, config)

        return (await self._cache(tenant).get(fetch, drop=drop)).value


def _for_the_service(request: CredentialsRequest, config: PictofitConfig) -> bool:
    """Whether the tenant's key belongs on the request: the service's origin, but not its token
    URL (which takes the password form instead)."""
    if config.token is not None and request.url.with_query(None) == URL(config.token.url):
        return False
    return request.goes_to(config.base_url)
