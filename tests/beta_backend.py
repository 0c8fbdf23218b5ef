"""Beta, a test backend whose OpenAPI fragment is built in code: a valid fragment (a tag, a path, a
parameter, a schema and a webhook of its own), and the plugin registering Beta with a fragment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.plugin_api import Backend, hookimpl
from tests.acme_backend import AcmeConfig


def beta_fragment() -> dict[str, Any]:
    """A valid fragment: a tag, a path, a parameter, a schema and a webhook of Beta's own."""
    gadget = {"$ref": "#/components/schemas/BetaGadget"}
    return {
        "tags": [{"name": "beta", "description": "Beta's gadgets."}],
        "paths": {
            "/v1/beta/gadgets/{gadgetId}": {
                "get": {
                    "operationId": "getBetaGadget",
                    "x-gateway-backend": True,
                    "tags": ["beta"],
                    "summary": "Get a Beta gadget",
                    "parameters": [
                        {"$ref": "#/components/parameters/RequestId"},
                        {"$ref": "#/components/parameters/BetaGadgetId"},
                    ],
                    "responses": {
                        "200": {
                            "description": "The gadget.",
                            "content": {"application/json": {"schema": gadget}},
                        },
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            }
        },
        "components": {
            "parameters": {
                "BetaGadgetId": {
                    "name": "gadgetId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "schemas": {"BetaGadget": {"type": "object", "properties": {"id": {"type": "string"}}}},
        },
        "webhooks": {
            "beta.ready": {
                "post": {
                    "operationId": "betaReadyWebhook",
                    "tags": ["beta"],
                    "requestBody": {"content": {"application/json": {"schema": gadget}}},
                    "responses": {"204": {"$ref": "#/components/responses/WebhookAccepted"}},
                }
            }
        },
    }


def beta_plugin(
    fragment: dict[str, Any] | None,
    *,
    capabilities: frozenset[str] = frozenset({"getBetaGadget"}),
    event_types: dict[str, str] | None = None,
    openapi: str | None = None,
) -> object:
    """A plugin registering Beta, which brings `fragment` (or reads `openapi` if it is None)."""

    class Beta(Backend[AcmeConfig]):
        name = "beta"
        version = "0.0.1"
        config_type = AcmeConfig

        @classmethod
        def openapi_fragment(cls) -> Any:
            return fragment if fragment is not None else super().openapi_fragment()

    Beta.capabilities = capabilities
    Beta.event_types = {"beta.*": "Beta's events."} if event_types is None else event_types
    Beta.openapi = openapi

    class Plugin:
        @hookimpl
        def gateway_register_backends(self, register: Callable[[type[Backend[Any]]], None]) -> None:
            register(Beta)

    return Plugin()
