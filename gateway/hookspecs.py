"""The hooks: discovery and broadcast only. A backend's own work is its object's methods.

A plugin is registered under the entry point group `gateway.backends` or `gateway.sinks` (or
passed to `create_app(..., extra_plugins=...)`) and implements these hooks with
`gateway.plugin_api.hookimpl`.
Hooks are called with keyword arguments only; an implementation may return a value or an
awaitable of it, and the core awaits it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from gateway.backend import Backend, Sandbox
    from gateway.sink import Sink
    from gateway.values import Event

_spec = pluggy.HookspecMarker("gateway")


@_spec
def gateway_register_backends(register: Callable[[type[Backend[Any]]], None]) -> None:
    """Register the backends this plugin provides: `register(MyBackend)`, a `Backend` subclass.

    Fires once per app, when the plugins are loaded. The core reads the class's declaration
    (name, capabilities, config class) at once and builds one instance per app at start-up. Two
    backends of one name stop the start-up with an error.
    """


@_spec
def gateway_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register the sinks this plugin provides: `register(MySink)`, a `Sink` subclass.

    Fires once per app, when the plugins are loaded. The core reads the class's declaration (name,
    URL schemes) at once and builds one instance per app at start-up. Two sinks of one name, or
    serving one scheme, stop the start-up with an error.
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
