"""Artifi as a backend object: one per app, holding the tenants' call slots and upload rules.

Artifi serves user photo uploads for product customisation (ARTIFI.md beside the upstream docs);
the operations live in `operations.py`, the envelope in `envelope.py`, the upload checks in
`preflight.py` and this project's assumptions about Artifi in `config.Assumptions`.
"""

from __future__ import annotations

from importlib import metadata

from gateway.plugin_api import (
    Backend,
    BackendContext,
    Credentials,
    CredentialsRequest,
    OperationCall,
    Reply,
    not_implemented,
)
from gateway_artifi.client import ArtifiClient
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.operations import EVENT_TYPES, OPERATIONS
from gateway_artifi.runtime import Runtime

__all__ = ["ArtifiBackend"]


class ArtifiBackend(Backend[ArtifiConfig]):
    name = "artifi"
    version = metadata.version("gateway-artifi")
    config_type = ArtifiConfig
    capabilities = frozenset(OPERATIONS)
    description = "Artifi: product customisation, user photo uploads."
    event_types = EVENT_TYPES

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.runtime = Runtime()

    async def credentials(self, request: CredentialsRequest) -> Credentials:
        config: ArtifiConfig = request.config
        # api/2 and api/3 take both in the query string (documented), so URLs must be redacted;
        # and only on Artifi's own origin.
        key = config.client_key.reveal()
        if not request.goes_to(config.base_url):
            return Credentials(secrets=frozenset({key}))
        return Credentials(
            query={"websiteId": str(config.website_id), "webApiClientKey": key},
            secrets=frozenset({key}),
        )

    async def operation(self, call: OperationCall[ArtifiConfig]) -> Reply:
        operation = OPERATIONS.get(call.operation)
        if operation is None:  # the core only routes declared capabilities here
            raise not_implemented(f"backend {self.name} does not serve {call.operation}")
        return await operation(call, ArtifiClient(call, self.runtime))
