"""What a backend plugin sees of the core: the values it declares, receives and returns.

A backend plugin imports from here (and `gateway.hookspecs` for the hook names), never from the
core's other modules, so this module is the plugin API and changes to it are changes to the contract
with third-party backends.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.forms import Form
    from gateway.store import ResourceRecord, Store
    from gateway.upstream import BoundUpstream

__all__ = [
    "BackendDeclaration",
    "CallbackCall",
    "Credentials",
    "Event",
    "GatewayServices",
    "OperationCall",
    "Reply",
    "ResourceBook",
    "Sandbox",
    "Secret",
    "hookimpl",
]

hookimpl = pluggy.HookimplMarker("gateway")
"""Marks a plugin's hook implementations: `@hookimpl def gateway_declare_backend(): ...`."""


@attrs.frozen
class BackendDeclaration:
    """Who a backend is and what it serves; returned by `gateway_declare_backend`.

    `capabilities` are the contract's operationIds this backend serves; the core answers 501 for
    the others. `config_type` is an attrs class: the core structures `tenants[].backends.<name>`
    into it with the same converter as the rest of the configuration, so its errors name the path.
    `event_types` maps each event type the backend emits to a one-line description.
    """

    name: str
    version: str
    capabilities: frozenset[str]
    config_type: type[Any]
    description: str = ""
    event_types: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(repr=False)
class Secret:
    """A secret read from where the configuration points, each time it is needed.

    Configuration names secrets as references (`env:NAME` or `file:PATH`), never as values, and they
    are resolved per call so that a rotated key is picked up without a restart. `repr()` shows the
    reference, never the value.
    """

    ref: str
    _literal: str | None = attrs.field(default=None, alias="_literal")

    def __attrs_post_init__(self) -> None:
        if self._literal is None and not self.ref.startswith(("env:", "file:")):
            raise ValueError('a secret must be a reference: "env:NAME" or "file:PATH"')

    @classmethod
    def literal(cls, value: str, label: str = "literal") -> Secret:
        """A secret held in memory, for sandbox mode and tests; never read from configuration."""
        return cls(ref=label, _literal=value)

    def reveal(self) -> str:
        if self._literal is not None:
            return self._literal
        kind, _, where = self.ref.partition(":")
        if kind == "env":
            try:
                return os.environ[where]
            except KeyError:
                raise LookupError(f"environment variable {where} is not set") from None
        return Path(where).read_text(encoding="utf-8").strip()

    def __repr__(self) -> str:
        return f"Secret({self.ref!r})"


@attrs.frozen
class Credentials:
    """What a backend adds to an upstream request so that the upstream knows the tenant.

    Returned by `gateway_upstream_credentials` for every attempt. `secrets` lists the values the
    core must redact wherever they could appear (URLs in log lines, error details, metric labels);
    header values given here are never logged at all.
    """

    headers: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    secrets: frozenset[str] = frozenset()


@attrs.frozen
class Reply:
    """A JSON answer from a backend's operation; the core encodes it. `body=None` sends no body."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Event:
    """A unified event, as subscribers receive it (see the contract's `webhooks`)."""

    id: str
    type: str
    tenant: str
    backend: str | None
    occurred_at: str
    data: Mapping[str, Any]
    dedupe_key: str | None = None

    def document(self) -> dict[str, Any]:
        """The event as subscribers and callers see it (the contract's `Event`)."""
        return {
            "id": self.id,
            "type": self.type,
            "tenant": self.tenant,
            "backend": self.backend,
            "occurredAt": self.occurred_at,
            "data": self.data,
        }

    @classmethod
    def new(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        *,
        tenant: str,
        backend: str | None,
        dedupe_key: str | None = None,
    ) -> Event:
        """A fresh event happening now, with a new `evt_` id."""
        return cls(
            id=f"evt_{uuid.uuid4().hex}",
            type=event_type,
            tenant=tenant,
            backend=backend,
            occurred_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            data=data,
            dedupe_key=dedupe_key,
        )


class ResourceBook:
    """The records a backend keeps about the resources its tenant created through the gateway.

    Scoped to one tenant: another tenant's resource reads as None, exactly as if it did not exist.
    The core records the resources named in the contract's `x-gateway-resources` before the
    operation runs; a backend adds its own attributes, and may record further resources (images).
    """

    def __init__(self, store: Store, *, tenant: str, backend: str) -> None:
        self._store = store
        self._tenant = tenant
        self._backend = backend

    async def get(self, kind: str, resource_id: str) -> ResourceRecord | None:
        record = await self._store.get_resource(kind, resource_id)
        return record if record is not None and record.tenant == self._tenant else None

    async def put(
        self,
        kind: str,
        resource_id: str,
        attributes: Mapping[str, Any],
        *,
        parent_id: str | None = None,
    ) -> ResourceRecord:
        """Record the resource if new, then merge `attributes` (top-level keys replaced).

        Raises LookupError if another tenant owns that id.
        """
        record = await self._store.claim_resource(
            kind, resource_id, tenant=self._tenant, backend=self._backend, parent_id=parent_id
        )
        if record.tenant != self._tenant:
            raise LookupError(f"{kind} {resource_id} belongs to another tenant")
        updated = await self._store.update_resource(kind, resource_id, attributes)
        assert updated is not None
        return updated

    async def claim(self, kind: str, resource_id: str, *, parent_id: str | None = None) -> bool:
        """Own the resource from its first use: True if this tenant owns it (now or already),
        False if another tenant does. Writes only the first time."""
        record = await self._store.get_resource(kind, resource_id)
        if record is None:
            record = await self._store.claim_resource(
                kind, resource_id, tenant=self._tenant, backend=self._backend, parent_id=parent_id
            )
        return record.tenant == self._tenant

    async def children(self, kind: str, parent_id: str) -> list[ResourceRecord]:
        """The records of `kind` under `parent_id`, oldest first."""
        return list(await self._store.list_resources(self._tenant, kind, (parent_id,)))

    async def children_of(
        self, kind: str, parent_ids: Iterable[str]
    ) -> dict[str, list[ResourceRecord]]:
        """The records of `kind` under each of `parent_ids` (every one a key, oldest first), in
        one read however many parents there are."""
        found: dict[str, list[ResourceRecord]] = {parent: [] for parent in parent_ids}
        for record in await self._store.list_resources(self._tenant, kind, tuple(found)):
            if record.parent_id is not None:
                found[record.parent_id].append(record)
        return found


class GatewayServices:
    """The core's services a backend may use while it handles a call.

    A small, stable surface (plugins must not reach into the app): publishing events, building
    URLs of the gateway's own routes, streaming an answer, and the tenant's resource records.
    """

    def __init__(
        self,
        *,
        resources: ResourceBook,
        publish: Callable[[Event], Awaitable[bool]],
        url_for: Callable[..., str],
        start_stream: Callable[..., Awaitable[web.StreamResponse]],
        tenant: str,
        backend: str,
    ) -> None:
        self.resources = resources
        self._publish = publish
        self._url_for = url_for
        self._start_stream = start_stream
        self._tenant = tenant
        self._backend = backend

    async def emit(
        self, event_type: str, data: Mapping[str, Any], *, dedupe_key: str | None = None
    ) -> Event | None:
        """Publish an event for this call's tenant and backend, durably.

        Returns the event once it is stored, or None when `dedupe_key` shows it was already
        published (a repeated upstream callback).
        """
        event = Event.new(
            event_type, data, tenant=self._tenant, backend=self._backend, dedupe_key=dedupe_key
        )
        return event if await self._publish(event) else None

    def url_for(self, operation_id: str, /, **path: str) -> str:
        """The absolute URL of one of the gateway's own routes, e.g. `downloadResult`."""
        return self._url_for(operation_id, **path)

    async def start_stream(
        self,
        *,
        content_type: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
    ) -> web.StreamResponse:
        """Begin a streamed answer to the caller; write chunks to it, then return it from the hook.

        For bodies that must not be held in memory, such as a result file passed through.
        """
        return await self._start_stream(
            content_type=content_type, status=status, headers=headers, content_length=content_length
        )


@attrs.frozen
class OperationCall:
    """One unified operation, validated against the contract, routed to one backend.

    `path`, `query` and `headers` hold the contract's parameters, already coerced to their schema
    types; `body` the validated JSON body; `form` the validated multipart form with its files
    spooled to disk. `config` is this tenant's configuration for the backend (its `config_type`).
    """

    operation: str
    backend: str
    tenant: str
    config: Any
    request_id: str
    path: Mapping[str, Any]
    query: Mapping[str, Any]
    headers: Mapping[str, str]
    body: Any
    form: Form | None
    upstream: BoundUpstream
    services: GatewayServices


@attrs.frozen
class CallbackCall:
    """An inbound request from an upstream to `/callbacks/{backend}/{tenantId}/{callbackPath}`.

    The core has not authenticated it: the backend checks its own secret (constant time) and answers
    401 if it does not match. `config` is None when the tenant does not exist or has no
    configuration for this backend.
    """

    backend: str
    tenant: str
    config: Any
    callback_path: str
    request_id: str
    headers: Mapping[str, str]
    body: bytes
    upstream: BoundUpstream
    services: GatewayServices


@attrs.frozen
class Sandbox:
    """A backend's simulator: a real aiohttp app, and the tenant configuration that points at it.

    `make_app()` builds the simulator; `tenant_config(base_url)` returns the raw configuration
    mapping (as under `[tenants.backends.<name>]`, secrets as `Secret`) for a demo tenant whose
    upstream is the simulator served at `base_url`.
    """

    backend: str
    make_app: Callable[[], web.Application]
    tenant_config: Callable[[str], Mapping[str, Any]]
