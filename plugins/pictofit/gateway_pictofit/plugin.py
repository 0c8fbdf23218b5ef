"""The PICTOFiT Content Service backend: declaration, configuration, credentials, sandbox."""

from __future__ import annotations

import attrs

from gateway.backend import BackendDeclaration, Credentials, Sandbox, Secret, hookimpl
from gateway_pictofit import sandbox

NAME = "pictofit"
VERSION = "0.1.0"


@attrs.frozen
class PictofitConfig:
    """A tenant's `[tenants.backends.pictofit]` table."""

    customer_id: str
    base_url: str = "https://api.cs.pictofit.com/v1.5"
    api_key: Secret | None = None


@hookimpl
def gateway_declare_backend() -> BackendDeclaration:
    return BackendDeclaration(
        name=NAME,
        version=VERSION,
        capabilities=frozenset(),
        config_type=PictofitConfig,
        description="PICTOFiT Content Service: garment photos to virtual try-on assets.",
    )


@hookimpl
def gateway_upstream_credentials(
    backend: str, tenant: str, config: PictofitConfig, refresh: bool
) -> Credentials:
    if config.api_key is None:
        return Credentials()
    key = config.api_key.reveal()
    return Credentials(headers={"Authorization": f"Bearer {key}"}, secrets=frozenset({key}))


@hookimpl
def gateway_sandbox() -> Sandbox:
    settings = sandbox.PictofitSandboxSettings()
    return Sandbox(
        backend=NAME,
        make_app=lambda: sandbox.create_sandbox_app(settings),
        tenant_config=lambda url: {
            "base_url": url,
            "customer_id": settings.customer_id,
            "api_key": Secret.literal(next(iter(settings.api_keys)), "sandbox"),
        },
    )
