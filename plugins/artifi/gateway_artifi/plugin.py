"""The Artifi backend's hooks: declaration, credentials, operations, sandbox.

Artifi serves user photo uploads for product customisation (ARTIFI.md beside the upstream docs);
the operations live in `operations.py`, the envelope in `envelope.py`, the upload checks in
`preflight.py` and this project's assumptions about Artifi in `config.Assumptions`.
"""

from __future__ import annotations

from gateway.backend import (
    BackendDeclaration,
    Credentials,
    OperationCall,
    Reply,
    Sandbox,
    Secret,
    hookimpl,
)
from gateway.problems import not_implemented
from gateway_artifi import sandbox
from gateway_artifi.client import ArtifiClient
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.operations import EVENT_TYPES, OPERATIONS

__all__ = ["NAME", "VERSION", "ArtifiConfig"]

NAME = "artifi"
VERSION = "0.1.0"


@hookimpl
def gateway_declare_backend() -> BackendDeclaration:
    return BackendDeclaration(
        name=NAME,
        version=VERSION,
        capabilities=frozenset(OPERATIONS),
        config_type=ArtifiConfig,
        description="Artifi: product customisation, user photo uploads.",
        event_types=dict(EVENT_TYPES),
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
async def gateway_handle_operation(call: OperationCall) -> Reply:
    operation = OPERATIONS.get(call.operation)
    if operation is None:  # the core only routes declared capabilities here
        raise not_implemented(f"backend {NAME} does not serve {call.operation}")
    return await operation(call, ArtifiClient(call))


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
