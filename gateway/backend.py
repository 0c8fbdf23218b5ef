"""A backend, as the core sees it: the `Backend` base class and what the core hands it.

Plugins never import this module: `gateway.plugin_api` re-exports it with the rest of the plugin
API (values, errors, the upstream client's types, the simulators' and tests' kits). The core
imports it from here, so that the plugin API may carry the test kit, which starts the core.
A backend is an object: a `Backend` subclass, declared by its class attributes and registered by
the plugin's `gateway_register_backends(register)` hook; the core builds one instance per app,
calls its methods directly and `aclose()`s it when the app stops, so the instance is where a
backend keeps its state (token caches, rule caches, concurrency limits).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import attrs
import pluggy
import yaml

from gateway.calls import GatewayServices, OperationCall
from gateway.problems import not_found, not_implemented
from gateway.upstream import BoundUpstream, CredentialsRequest, UpstreamClient
from gateway.values import Credentials, Reply

if TYPE_CHECKING:
    from aiohttp import web

hookimpl = pluggy.HookimplMarker("gateway")
"""Marks a plugin's hook implementations: `@hookimpl def gateway_register_backends(register)`."""

C = TypeVar("C")


@attrs.frozen
class CallbackCall(Generic[C]):
    """An inbound request from an upstream to `/callbacks/{backend}/{tenantId}/{callbackPath}`.

    The core has not authenticated it: the backend checks its own secret (constant time) and answers
    401 if it does not match. `config` is None when the tenant does not exist or has no
    configuration for this backend.

    When the tenant shares an upstream account with others (`Backend.callback_account`), the one
    registration made for the account brings the callbacks of all of them: `account` names it and
    `tenants` holds every tenant of it with its configuration. The backend tells from the payload
    whose the callback is (`owner`, by the resources the tenants created through the gateway) and
    emits through that tenant's `services_for(tenant)`; `services` stays the URL's tenant's.
    Otherwise `tenants` is the URL's tenant alone (none without a configuration).
    """

    backend: str
    tenant: str
    config: C | None
    callback_path: str
    request_id: str
    headers: Mapping[str, str]
    body: bytes
    # For the URL's tenant, with its configuration (None when it has none: `config`).
    upstream: BoundUpstream[C | None]
    services: GatewayServices
    account: str | None = None
    tenants: Mapping[str, C] = attrs.field(factory=dict)
    _services_for: Callable[[str], GatewayServices] | None = attrs.field(default=None, repr=False)
    _owner_of: Callable[[str, str], Awaitable[str | None]] | None = attrs.field(
        default=None, repr=False
    )

    def services_for(self, tenant: str) -> GatewayServices:
        """The services (events, resource records) of `tenant`, one of `tenants`; LookupError
        for any other, so a callback never reaches a tenant outside its account."""
        if tenant not in self.tenants:
            raise LookupError(f"tenant {tenant!r} does not share this callback's account")
        if tenant == self.tenant:
            return self.services
        if self._services_for is None:
            raise LookupError(f"no services for tenant {tenant!r} in this call")
        return self._services_for(tenant)

    async def owner(self, kind: str, resource_id: str) -> str | None:
        """The tenant among `tenants` that created the resource through the gateway (with this
        backend), or None: the resource is unknown, or another account's."""
        if self._owner_of is not None:
            found = await self._owner_of(kind, resource_id)
            return found if found in self.tenants else None
        if self.tenant in self.tenants and await self.services.resources.get(kind, resource_id):
            return self.tenant
        return None


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


@attrs.frozen
class CallbackRegistration(Generic[C]):
    """Register a backend's callbacks for one tenant with its upstream; see
    `Backend.register_callbacks`. `callback_url` is `{public_url}/callbacks/{backend}/{tenant}/`:
    the backend appends what identifies the callback.

    For an account several tenants share (`Backend.callback_account`), one registration is made
    for all of them: `account` names it, `tenants` lists them (sorted), and `tenant`, `config` and
    `callback_url` are the first one's; callbacks to that URL reach the backend with every tenant
    of the account (`CallbackCall.tenants`). Otherwise `tenants` is `(tenant,)`.
    """

    tenant: str
    config: C
    callback_url: str
    upstream: BoundUpstream[C]
    tenants: tuple[str, ...] = attrs.field()
    account: str | None = None

    @tenants.default
    def _just_this_tenant(self) -> tuple[str, ...]:
        return (self.tenant,)


@attrs.frozen
class BackendContext:
    """What the core gives a backend when it builds it, once per app: its name and its upstream
    client (one session and breaker for the backend; `bind` it for background work)."""

    name: str
    upstream: UpstreamClient


class Backend(Generic[C]):
    """A backend, within one app. Subclass it, set the class attributes, register the class.

    The class attributes declare it before any instance exists (the configuration is checked
    against `config_type` first): `capabilities` are the contract's operationIds it serves (the
    core answers 501 for the others), `config_type` is an attrs class the core structures each
    tenant's `[tenants.backends.<name>]` table into with the configuration's converter (errors
    name their path), `event_types` maps each event type it emits to a one-line description.
    `openapi` names the OpenAPI fragment the backend brings operations of its own in, if any
    (`openapi_fragment`): the core merges it into the contract it serves.

    The core builds one instance per app with a `BackendContext` and calls:
    `credentials` before every upstream attempt, `operation` for each caller request routed here,
    and, when the subclass defines them, `callback` for each request the upstream sends to
    `/callbacks/{name}/...` and `register_callbacks` per tenant at start-up (in the background,
    until it succeeds) and on `gateway callbacks sync` (once per account instead, for tenants
    that share one: `callback_account`). `aclose` runs when the app stops.
    Errors are raised as `ProblemError`s (the helpers above), never answered by hand.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    config_type: type[C]  # a class attribute; ClassVar cannot name C
    capabilities: ClassVar[frozenset[str]]
    description: ClassVar[str] = ""
    event_types: ClassVar[Mapping[str, str]] = {}
    # "package:path/in/it.yaml": a YAML file shipped in the distribution (package data).
    openapi: ClassVar[str | None] = None

    def __init__(self, context: BackendContext) -> None:
        self.context = context

    @classmethod
    def openapi_fragment(cls) -> Mapping[str, Any] | None:
        """The operations this backend brings, as an OpenAPI fragment: `tags` of its own,
        `paths` (under /v1/, each operation `x-gateway-backend: true`, tagged with one of its
        tags, and among `capabilities`), `components` and `webhooks` (for its `event_types`).
        `$ref`s name the contract's components or the fragment's. Read from `openapi` by
        default; override to build it in code. Read when an app is built; a clash with the
        contract or another backend's fragment stops the start-up."""
        if cls.openapi is None:
            return None
        package, colon, path = cls.openapi.partition(":")
        if not (colon and package and path):
            raise ValueError(f"{cls.__name__}.openapi is 'package:path/in/it.yaml'")
        loaded: Mapping[str, Any] = yaml.safe_load(
            resources.files(package).joinpath(path).read_text(encoding="utf-8")
        )
        return loaded

    async def credentials(self, request: CredentialsRequest[C]) -> Credentials:
        """What the upstream needs to know the tenant, for this one request: headers, query,
        secrets to redact. Asked before every attempt (a rotated key is used at once); a key
        must go only to the hosts it belongs to (`request.url`)."""
        return Credentials()

    async def operation(self, call: OperationCall[C]) -> Reply | web.StreamResponse:
        """Carry out one of the `capabilities` for `call.tenant`, after the caller's key, the
        request and the tenant's ownership of the path's resources were checked."""
        raise not_implemented(f"backend {self.name} does not serve {call.operation}")

    async def callback(self, call: CallbackCall[C]) -> Reply:
        """Receive a request the upstream sent: authenticate it with the backend's own secret
        (401 storing nothing), turn it into events (`call.services.emit`) and answer 2xx only
        once they were accepted. Defined only by backends whose upstream calls back."""
        raise not_found(f"backend {self.name} receives no callbacks")

    async def register_callbacks(self, registration: CallbackRegistration[C]) -> None:
        """Register the callbacks for one tenant, or for one account and all its `tenants`;
        idempotent; raise to report a failure (it is retried and shown, for each tenant, in
        `/readyz` and `/v1/backends`)."""

    def callback_account(self, config: C) -> str | None:
        """The upstream account whose callback registration `config` uses, when the upstream
        keeps one registration per account (a second would replace the first) and tenants may
        share an account; None (the default): every tenant registers its own. Tenants whose
        configs name the same account are registered once, together, and the backend routes each
        of the account's callbacks to its tenant (`CallbackCall.owner`, `services_for`). Called
        at start-up; the name appears in logs, so it is an id, never a secret."""
        return None

    async def aclose(self) -> None:
        """Release what the instance holds; the app is stopping."""

    @classmethod
    def receives_callbacks(cls) -> bool:
        return cls.callback is not Backend.callback

    @classmethod
    def registers_callbacks(cls) -> bool:
        return cls.register_callbacks is not Backend.register_callbacks
