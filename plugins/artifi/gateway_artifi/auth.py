"""What the gateway sends Artifi to be known as the tenant: the website id and client key.

api/2 and api/3 take both in the query string (documented), so the key is listed as a secret and
redacted from every URL the gateway logs; it goes only to Artifi's own origin. Artifi has no
token to fetch or renew: `Auth` holds no state, and is an object for the same shape as others'.
"""

from __future__ import annotations

from gateway.plugin_api import REDACTED, Credentials, CredentialsRequest, strip_url_queries
from gateway_artifi.config import ArtifiConfig

__all__ = ["Auth", "scrub"]


class Auth:
    """The tenants' credentials for one app's Artifi backend."""

    async def credentials(self, request: CredentialsRequest[ArtifiConfig]) -> Credentials:
        config = request.config
        key = config.client_key.reveal()
        if not request.goes_to(config.base_url):
            return Credentials(secrets=frozenset({key}))
        return Credentials(
            query={"websiteId": str(config.website_id), "webApiClientKey": key},
            secrets=frozenset({key}),
        )


def scrub(config: ArtifiConfig, text: str) -> str:
    """Upstream text made safe to show: no client key, no URL query (which would carry it)."""
    try:
        key = config.client_key.reveal()
    except (LookupError, OSError):
        key = ""
    if key:
        text = text.replace(key, REDACTED)
    return strip_url_queries(text)
