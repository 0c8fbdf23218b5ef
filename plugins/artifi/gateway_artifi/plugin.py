"""The Artifi plugin: registers its backend and offers its simulator to sandbox mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.plugin_api import Backend, Sandbox, Secret, hookimpl
from gateway_artifi import sandbox
from gateway_artifi.backend import ArtifiBackend


@hookimpl
def gateway_register_backends(register: Callable[[type[Backend[Any]]], None]) -> None:
    register(ArtifiBackend)


@hookimpl
def gateway_sandbox() -> Sandbox:
    settings = sandbox.ArtifiSandboxSettings()
    website = settings.websites[0]
    return Sandbox(
        backend=ArtifiBackend.name,
        make_app=lambda: sandbox.create_sandbox_app(settings),
        tenant_config=lambda url: {
            "base_url": url,
            "website_id": website.website_id,
            "client_key": Secret.literal(website.client_key, "sandbox"),
        },
    )
