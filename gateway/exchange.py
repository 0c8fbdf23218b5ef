"""What the edge learns of a request as it goes, kept for its handler and whatever reads it
later (problems, tracing): one object under one request key. Each `request[KEY]` is a Python
call, and the edge wrote four keys that the handler read back, on every request."""

from __future__ import annotations

from typing import Final

from gateway.contract import Operation
from gateway.tenants import Tenant
from gateway.validation import Input

__all__ = ["Exchange"]


class Exchange:
    """Filled in by the edge: the request id and route first, then the caller's tenant (not on
    public routes) and the request's checked input (once validated). A plain compiled class, as
    `gateway.values.Reply`: its fields are read as C struct members."""

    def __init__(self, request_id: str, operation: Operation | None) -> None:
        self.request_id: Final = request_id
        self.operation: Final = operation  # None on the UNMATCHED route
        self.found_tenant: Tenant | None = None
        self.checked: Input | None = None

    @property
    def tenant(self) -> Tenant:
        """The authenticated tenant; only a handler behind a caller key asks."""
        if self.found_tenant is None:
            raise LookupError("no tenant: the route is public or the key was not checked yet")
        return self.found_tenant

    @property
    def input(self) -> Input:
        """The validated request; only a handler asks, after validation."""
        if self.checked is None:
            raise LookupError("the request has not been validated")
        return self.checked

    @property
    def route(self) -> Operation:
        """The matched operation; only an operation's handler asks."""
        if self.operation is None:
            raise LookupError("no operation: the request matched no route")
        return self.operation
