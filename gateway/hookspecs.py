"""The backend contract: the hooks a backend plugin implements, and the one the core offers.

A backend is a plugin registered under the entry point group `gateway.backends` (or passed to
`create_app(..., extra_plugins=...)`) that implements these hooks with `gateway.backend.hookimpl`.
The per-backend hooks (`gateway_upstream_credentials`, `gateway_handle_operation`,
`gateway_handle_callback`) are called only on the plugin that declared the backend, so an
implementation never needs to check whose call it is. Hooks are called with keyword arguments only;
an implementation may return a value or an awaitable of it, and the core awaits it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.backend import (
        BackendDeclaration,
        CallbackCall,
        Credentials,
        Event,
        OperationCall,
        Reply,
        Sandbox,
    )
    from gateway.upstream import BoundUpstream

_spec = pluggy.HookspecMarker("gateway")


@_spec
def gateway_declare_backend() -> BackendDeclaration | None:
    """Declare the backend this plugin provides: name, version, capabilities, config class.

    Fires once per app, when the plugin manager is built. A plugin that is not a backend returns
    None. Two plugins declaring the same name stop the start-up with an error.
    """


@_spec(firstresult=True)
def gateway_upstream_credentials(
    backend: str, tenant: str, config: Any, refresh: bool
) -> Credentials | Awaitable[Credentials] | None:
    """Return what this backend's upstream needs to know the tenant: headers, query, secrets.

    Fires before every attempt of every upstream call, so a rotated key or a renewed token is
    used at once. `config` is the tenant's configuration for the backend (its `config_type`).
    `refresh` is True once after the upstream answered 401: drop any cached token and fetch a new
    one. First result wins; called only on the plugin that declared `backend`.
    """


@_spec(firstresult=True)
def gateway_handle_operation(
    call: OperationCall,
) -> Awaitable[Reply | web.StreamResponse] | Reply | web.StreamResponse | None:
    """Carry out one unified operation of the contract (`call.operation`) for `call.tenant`.

    Fires for each caller request routed to this backend, after the caller's key, the request
    and the tenant's ownership of the resources in the path were checked. Upstream calls go
    through `call.upstream`; raise `gateway.problems.ProblemError` for errors. First result wins;
    called only on the plugin that declared `call.backend`, and only for its capabilities.
    """


@_spec(firstresult=True)
def gateway_handle_callback(
    call: CallbackCall,
) -> Awaitable[Reply] | Reply | None:
    """Receive a request the upstream sent to `/callbacks/{backend}/{tenantId}/{callbackPath}`.

    Fires for every such request; the backend authenticates it with its own secret (401 when it
    does not match, storing nothing), turns it into events through `call.services.emit` and
    answers 2xx only after they were accepted. First result wins; called only on the plugin that
    declared `call.backend`.
    """


@_spec(firstresult=True)
def gateway_register_callbacks(
    backend: str, tenant: str, config: Any, callback_url: str, upstream: BoundUpstream
) -> Awaitable[None] | None:
    """Register this backend's callbacks for one tenant with the upstream; must be idempotent.

    Fires at start-up for every tenant that has the backend configured, when `server.public_url`
    is set; again in the background with backoff until it returns without raising; and on
    `gateway callbacks sync`. `callback_url` is `{public_url}/callbacks/{backend}/{tenant}/`: the
    backend appends what identifies the callback. Raise to report a failure (it is retried and
    shown in `/readyz` and `/v1/backends`). First result wins; called only on the plugin that
    declared `backend`.
    """


@_spec
def gateway_sandbox() -> Sandbox | None:
    """Offer this backend's simulator for sandbox mode (`gateway serve --sandbox`) and tests.

    Fires once when sandbox mode starts; every result is served on its own local port and a demo
    tenant is configured against it.
    """


@_spec(firstresult=True)
def gateway_publish_event(event: Event) -> Awaitable[bool] | bool | None:
    """Accept an event into the events pipeline; return True when it is new, False if a duplicate.

    Fires when a backend emits an event (from a callback or an operation). The core's own
    implementation runs last and records the event durably; a plugin may run first to observe or
    reroute events. Must not return before the event is durable. First result wins.
    """
