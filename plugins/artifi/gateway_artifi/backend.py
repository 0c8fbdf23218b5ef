"""Artifi as a backend object: one per app, holding the tenants' call slots and upload rules
(the package's docstring lists the other modules)."""

from __future__ import annotations

from importlib import metadata

from gateway.plugin_api import (
    Backend,
    BackendContext,
    Credentials,
    CredentialsRequest,
    OperationCall,
    Reply,
    TtlCache,
)
from gateway_artifi import NAME
from gateway_artifi.auth import Auth
from gateway_artifi.client import RulesCache, Slots
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.operations import OPERATIONS, serve
from gateway_artifi.values import EVENT_TYPES

__all__ = ["ArtifiBackend"]


class ArtifiBackend(Backend[ArtifiConfig]):
    name = NAME
    version = metadata.version("gateway-artifi")
    config_type = ArtifiConfig
    capabilities = frozenset(OPERATIONS)
    description = "Artifi: product customisation, user photo uploads."
    event_types = EVENT_TYPES

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.auth = Auth()
        self.slots = Slots()
        self.rules: RulesCache = TtlCache()

    async def credentials(self, request: CredentialsRequest[ArtifiConfig]) -> Credentials:
        return await self.auth.credentials(request)

    async def operation(self, call: OperationCall[ArtifiConfig]) -> Reply:
        return await serve(call, self.slots, self.rules)
