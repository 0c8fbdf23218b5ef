"""What the core hands a backend on each call: the operation (`OperationCall`), the core's
services (`GatewayServices`) and the tenant's resource records (`ResourceBook`).

Made on every request, so compiled (gateway.compiled); plugins import them through
`gateway.plugin_api`, as the rest of `gateway.backend`.
"""

from __future__ import annotations

import re
import string
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import attrs

from gateway import wire
from gateway.forms import Form
from gateway.problems import not_found
from gateway.store.protocol import Store
from gateway.store.records import ResourceRecord
from gateway.telemetry.traced import current as telemetry_current
from gateway.upstream import BoundUpstream
from gateway.values import Event, value_repr

if TYPE_CHECKING:
    from aiohttp import web

C = TypeVar("C")


@attrs.frozen
class Recorded:
    """What `ResourceBook.put` did: the record as it is now, and whether this call created it
    (a create's 201 against a replacement's 200)."""

    record: ResourceRecord
    created: bool


class ResourceBook:
    """The records a backend keeps about the resources its tenant created through the gateway.

    Scoped to one tenant: another tenant's resource reads as None, exactly as if it did not exist.
    Before an operation runs, the core only checks the resources named in the contract's
    `x-gateway-resources`: the tenant owns them, or (`create`) nobody does, else 404 and nothing
    reaches the backend. The backend records a resource once its upstream accepted it (`put`),
    so a create the upstream refused leaves nothing behind; a resource the call creates that the
    backend did not record is recorded by the core once the backend answered 2xx. A backend may
    record further resources of its own (images).
    """

    def __init__(self, store: Store, *, tenant: str, backend: str) -> None:
        self._store = store
        self._tenant = tenant
        self._backend = backend
        # What this call recorded, by (kind, id): the core remembers the owners from it.
        self.recorded: dict[tuple[str, str], ResourceRecord] = {}

    async def get(self, kind: str, resource_id: str) -> ResourceRecord | None:
        record = await self._store.get_resource(kind, resource_id)
        if record is None or record.tenant != self._tenant:
            return None
        if (traced := telemetry_current()) is not None:
            await traced.read((record,))  # a callback links to the job that wrote it
        return record

    async def put(
        self,
        kind: str,
        resource_id: str,
        attributes: Mapping[str, Any],
        *,
        parent_id: str | None = None,
    ) -> Recorded:
        """Record the resource with `attributes` if it is new (`created`), else merge them into
        its record (top-level keys replaced), in one write. Call it once the upstream accepted
        the resource.

        Another tenant's id (one that won a race for it, since the core checked) raises a 404
        `ProblemError`, as if it did not exist; its record is left as it is.
        """
        record, created = await self._store.put_resource(
            kind,
            resource_id,
            tenant=self._tenant,
            backend=self._backend,
            parent_id=parent_id,
            attributes=attributes,
        )
        if record.tenant != self._tenant:
            raise not_found(f"{kind} {resource_id} does not exist")
        self.recorded[(kind, resource_id)] = record
        if (traced := telemetry_current()) is not None:
            await traced.recorded(kind, resource_id)  # its callback will continue this trace
        return Recorded(record, created)

    async def claim(self, kind: str, resource_id: str, *, parent_id: str | None = None) -> bool:
        """Own the resource from its first use: True if this tenant owns it (now or already),
        False if another tenant does. Writes only the first time."""
        record = await self._store.get_resource(kind, resource_id)
        if record is None:
            record = await self._store.claim_resource(
                kind, resource_id, tenant=self._tenant, backend=self._backend, parent_id=parent_id
            )
            if record.tenant == self._tenant and (traced := telemetry_current()) is not None:
                await traced.recorded(kind, resource_id)
        return record.tenant == self._tenant

    async def children(self, kind: str, parent_id: str) -> list[ResourceRecord]:
        """The records of `kind` under `parent_id`, oldest first."""
        # Remembered by the store, when it can (no coroutine to run), else read.
        parents = (parent_id,)
        found = self._store.known_resources(self._tenant, kind, parents)
        if found is None:
            found = list(await self._store.list_resources(self._tenant, kind, parents))
        if (traced := telemetry_current()) is not None:
            await traced.read(found)
        return found

    async def children_of(
        self, kind: str, parent_ids: Iterable[str]
    ) -> dict[str, list[ResourceRecord]]:
        """The records of `kind` under each of `parent_ids` (every one a key, oldest first), in
        one read however many parents there are."""
        found: dict[str, list[ResourceRecord]] = {parent: [] for parent in parent_ids}
        if not found:  # a listing of nothing (a product without configurations): no read
            return found
        parents = tuple(found)
        records = self._store.known_resources(self._tenant, kind, parents)
        if records is None:
            records = list(await self._store.list_resources(self._tenant, kind, parents))
        for record in records:
            if record.parent_id is not None:
                found[record.parent_id].append(record)
        if (traced := telemetry_current()) is not None:
            await traced.read(records)
        return found


PathTemplate = tuple[tuple[str, str], ...]
"""A path as (text, the parameter after it or "") pairs: filled in without parsing it again
(`str.format_map` parses its template on every call: most of what a URL cost)."""


def path_template(path: str) -> PathTemplate:
    return tuple((text, name or "") for text, name, _, _ in string.Formatter().parse(path))


# What `quote(text, safe="")` leaves as it is: ids usually are only this, and need no quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_QUOTED: dict[str, str] = {}  # text -> itself quoted: a listing's links name the same few ids
_QUOTED_MAX = 4096


def _quote(text: str) -> str:
    # A dict of its own rather than functools.lru_cache: a compiled lookup, not a Python call.
    quoted = _QUOTED.get(text)
    if quoted is None:
        quoted = text if _UNRESERVED.fullmatch(text) else urllib.parse.quote(text, safe="")
        if len(_QUOTED) >= _QUOTED_MAX:
            _QUOTED.clear()
        _QUOTED[text] = quoted
    return quoted


class UrlTemplate:
    """The absolute URL of one of the gateway's own routes, its origin already resolved:
    `GatewayServices.url_template`, made once for the many links of one answer."""

    def __init__(self, origin: str, path: PathTemplate) -> None:
        self._origin: Final = origin
        self._path: Final = path

    def fill(self, path: Mapping[str, Any]) -> str:
        """The URL with `path`'s parameters (by name, as in the contract) quoted into it."""
        parts = [self._origin]
        for literal, name in self._path:
            parts.append(literal)
            if name:
                parts.append(_quote(str(path[name])))
        return "".join(parts)


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
        url_template: Callable[[str], UrlTemplate],
        start_stream: Callable[..., Awaitable[web.StreamResponse]],
        tenant: str,
        backend: str,
    ) -> None:
        self.resources = resources
        self._publish = publish
        self._url_template = url_template
        self._start_stream = start_stream
        self._tenant = tenant
        self._backend = backend

    async def emit(
        self,
        event_type: str,
        data: Mapping[str, Any] | attrs.AttrsInstance,
        *,
        dedupe_key: str | None = None,
    ) -> Event | None:
        """Publish an event for this call's tenant and backend, durably. `data` is plain JSON data
        or an attrs value (in the wire format, as a reply's body).

        Returns the event once it is stored, or None when `dedupe_key` shows it was already
        published (a repeated upstream callback).
        """
        plain = data if isinstance(data, Mapping) else wire.unstructure(data)
        event = Event.new(
            event_type, plain, tenant=self._tenant, backend=self._backend, dedupe_key=dedupe_key
        )
        return event if await self._publish(event) else None

    def url_for(self, operation_id: str, /, **path: str) -> str:
        """The absolute URL of one of the gateway's own routes, e.g. `downloadResult`."""
        return self._url_template(operation_id).fill(path)

    def url_template(self, operation_id: str, /) -> UrlTemplate:
        """The same URLs, for `fill`ing one by one: the route and origin looked up once for the
        many links of one answer (`url_for` looks them up again for each)."""
        return self._url_template(operation_id)

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


class OperationCall(Generic[C]):
    """One unified operation, validated against the contract, routed to one backend.

    `path`, `query` and `headers` hold the contract's parameters, already coerced to their schema
    types; `body` the validated JSON body; `form` the validated multipart form with its files
    spooled to disk. `config` is this tenant's configuration for the backend (its `config_type`).

    A plain class with `Final` fields, as `gateway.values.Reply` and for the same reason.
    """

    def __init__(
        self,
        *,
        operation: str,
        backend: str,
        tenant: str,
        config: C,
        request_id: str,
        path: Mapping[str, Any],
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        body: Any,
        form: Form | None,
        upstream: BoundUpstream[C],
        services: GatewayServices,
    ) -> None:
        self.operation: Final = operation
        self.backend: Final = backend
        self.tenant: Final = tenant
        self.config: Final = config
        self.request_id: Final = request_id
        self.path: Final = path
        self.query: Final = query
        self.headers: Final = headers
        self.body: Final[Any] = body
        self.form: Final = form
        self.upstream: Final = upstream
        self.services: Final = services

    def __repr__(self) -> str:
        return value_repr(self, ("operation", "backend", "tenant", "request_id", "path", "query"))
