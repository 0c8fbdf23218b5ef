"""The Artifi backend: declaration, configuration, credentials, sandbox."""

from __future__ import annotations

import attrs

from gateway.backend import BackendDeclaration, Credentials, Sandbox, Secret, hookimpl
from gateway_artifi import sandbox

NAME = "artifi"
VERSION = "0.1.0"


@attrs.frozen
class ArtifiConfig:
    """A tenant's `[tenants.backends.artifi]` table."""

    base_url: str
    website_id: int
    client_key: Secret


@hookimpl
def gateway_declare_backend() -> BackendDeclaration:
    return BackendDeclaration(
        name=NAME,
        version=VERSION,
        capabilities=frozenset(),
        config_type=ArtifiConfig,
        description="Artifi: product customisation, user photo uploads.",
    )


@hookimpl
def gateway_upstream_credentials(
    backend: str, tenant: str, config: ArtifiConfig, refresh: bool
) -> Credentials:
    # api/2 and api/3 take both in the query string (documented), so URLs must be redacted.
    key = config.client_key.reveal()
    return Credentials(
        query={"websiteId": str(config.website_id), "webApiClientKey": key},
        secrets=frozenset({key}),
    )


@hookimpl
def gateway_sandbox() -> Sandbox:
    settings = sandbox.ArtifiSandboxSettings()
    website = settings.websites[0]
    return Sandbox(
        backend=NAME,
        make_app=lambda: sandbox.create_sandbox_app(settings),
        tenant_config=lambda url: {
            "base_url": url,
            "website_id": website.website_id,
            "client_key": Secret.literal(website.client_key, "sandbox"),
        },
    )
