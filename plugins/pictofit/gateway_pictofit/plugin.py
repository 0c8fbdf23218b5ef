"""The PICTOFiT plugin: registers its backend and offers its simulator to sandbox mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.plugin_api import Backend, Sandbox, Secret, hookimpl
from gateway_pictofit import sandbox
from gateway_pictofit.backend import PictofitBackend

# The sandbox's demo tenant authenticates callbacks with this (sandbox mode only).
SANDBOX_CALLBACK_SECRET: Final = "sandbox-pictofit-callback-secret"  # noqa: S105


@hookimpl
def gateway_register_backends(register: Callable[[type[Backend[Any]]], None]) -> None:
    register(PictofitBackend)


@hookimpl
def gateway_sandbox() -> Sandbox:
    settings = sandbox.PictofitSandboxSettings()
    return Sandbox(
        backend=PictofitBackend.name,
        make_app=lambda: sandbox.create_sandbox_app(settings),
        tenant_config=lambda url: {
            "base_url": url,
            "customer_id": settings.customer_id,
            "api_key": Secret.literal(next(iter(settings.api_keys)), "sandbox"),
            "callback_secret": Secret.literal(SANDBOX_CALLBACK_SECRET, "sandbox"),
        },
    )
