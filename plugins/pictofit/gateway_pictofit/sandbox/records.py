"""What the PICTOFiT sandbox stores: products, configurations, files, results, tokens, callbacks.

Timestamps are epoch float seconds, like the doc example.
"""

from __future__ import annotations

import attrs

from gateway.plugin_api import JSON
from gateway_pictofit.sandbox.types import STATE_CREATED

__all__ = [
    "CallbackRegistration",
    "IssuedToken",
    "ResultEntry",
    "ResultFile",
    "SandboxConfiguration",
    "SandboxProduct",
    "SentCallback",
    "StateTransition",
    "StoredFile",
]


@attrs.frozen
class SentCallback:
    """One delivery attempt: ``status`` when the receiver answered, else ``error``."""

    callback_type: str
    object_id: str
    url: str
    authorization: str | None
    status: int | None
    error: str | None
    source: str  # "processing" or "trigger"

    def to_json(self) -> JSON:
        return {
            "callbackType": self.callback_type,
            "objectId": self.object_id,
            "url": self.url,
            "authorization": self.authorization,
            "status": self.status,
            "error": self.error,
            "source": self.source,
        }


@attrs.frozen
class IssuedToken:
    access_token: str
    username: str
    expires_at: float  # time.monotonic() based


@attrs.frozen
class CallbackRegistration:
    url: str
    authorization_header_value: str


@attrs.frozen
class SandboxProduct:
    id: str
    customer_id: str
    name: str
    type_id: int
    sku: str | None
    created_at: float
    modified_at: float

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "customerId": self.customer_id,
            "name": self.name,
            "typeId": self.type_id,
            "sku": self.sku,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
        }


@attrs.frozen
class ResultEntry:
    format: str
    compressed: bool
    url: str
    file_name: str

    def to_json(self) -> JSON:
        return {
            "format": self.format,
            "compressed": self.compressed,
            "url": self.url,
            "fileName": self.file_name,
        }


@attrs.frozen
class SandboxConfiguration:
    id: str
    product_id: str
    name: str
    sku: str | None
    created_at: float
    modified_at: float
    state_id: int = STATE_CREATED
    results: tuple[ResultEntry, ...] = ()


@attrs.frozen
class StoredFile:
    id: str
    name: str
    configuration_id: str
    type_id: int
    content_type: str
    data: bytes = attrs.field(repr=False)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "configurationId": self.configuration_id,
            "typeId": self.type_id,
            "contentType": self.content_type,
            "size": len(self.data),
        }


@attrs.frozen
class ResultFile:
    """What a download token serves; the bytes are derived, not stored."""

    token: str
    configuration_id: str
    format: str
    compressed: bool
    file_name: str


@attrs.frozen
class StateTransition:
    configuration_id: str
    state_id: int
    at: float
