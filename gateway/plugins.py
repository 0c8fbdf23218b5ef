"""The plugin manager, built per app, and the one typed facade the core calls hooks through.

Load order is deterministic (as tox does it): blocked names from the configuration, the core's own
plugins, the `gateway.backends` entry points, the `extra_plugins` given to `create_app`, then
`check_pending()` so that a misspelled hook fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import pluggy
from aiohttp import web

from gateway import hookspecs
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

ENTRY_POINT_GROUP = "gateway.backends"
PROJECT = "gateway"
T = TypeVar("T")


class PluginError(Exception):
    """A plugin is broken or two plugins disagree; the gateway does not start."""


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """A hook may answer a value or an awaitable of it (pluggy has no async of its own)."""
    if inspect.isawaitable(value):
        return await value
    return value


def build_plugin_manager(
    *, blocked: Iterable[str] = (), core: Iterable[object] = (), extra: Iterable[object] = ()
) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in blocked:
        manager.set_blocked(name)
    for plugin in core:
        manager.register(plugin, name=f"gateway.core.{type(plugin).__name__}")
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra:
        manager.register(plugin)
    manager.check_pending()
    return manager


class PluginHost:
    """Typed access to the hooks; per-backend hooks reach only the plugin that declared it."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.declarations: dict[str, BackendDeclaration] = {}
        self._per_backend: dict[str, Any] = {}
        plugins = manager.get_plugins()
        for plugin in plugins:
            others = [p for p in plugins if p is not plugin]
            declared = manager.subset_hook_caller("gateway_declare_backend", others)()
            for declaration in declared:
                if not isinstance(declaration, BackendDeclaration):
                    name = manager.get_name(plugin)
                    raise PluginError(f"plugin {name} declared {declaration!r}, not a backend")
                if declaration.name in self.declarations:
                    raise PluginError(f"two plugins declare the backend {declaration.name!r}")
                self.declarations[declaration.name] = declaration
                self._per_backend[declaration.name] = _BackendHooks(manager, others)

    @classmethod
    def build(
        cls,
        *,
        blocked: Iterable[str] = (),
        core: Iterable[object] = (),
        extra: Iterable[object] = (),
    ) -> PluginHost:
        return cls(build_plugin_manager(blocked=blocked, core=core, extra=extra))

    @property
    def config_types(self) -> Mapping[str, type[Any]]:
        return {name: d.config_type for name, d in self.declarations.items()}

    def serves(self, backend: str, operation_id: str) -> bool:
        declaration = self.declarations.get(backend)
        return declaration is not None and operation_id in declaration.capabilities

    async def credentials(
        self, backend: str, tenant: str, config: Any, refresh: bool
    ) -> Credentials:
        hook = self._per_backend[backend].credentials
        result = await await_me_maybe(
            hook(backend=backend, tenant=tenant, config=config, refresh=refresh)
        )
        return result if result is not None else Credentials()

    async def handle_operation(self, call: OperationCall) -> Reply | web.StreamResponse:
        result = await await_me_maybe(self._per_backend[call.backend].operation(call=call))
        if not isinstance(result, Reply | web.StreamResponse):
            raise PluginError(f"backend {call.backend} did not serve {call.operation}: {result!r}")
        return result

    async def handle_callback(self, call: CallbackCall) -> Reply:
        result = await await_me_maybe(self._per_backend[call.backend].callback(call=call))
        if not isinstance(result, Reply):
            raise PluginError(f"backend {call.backend} answered a callback with {result!r}")
        return result

    def receives_callbacks(self, backend: str) -> bool:
        hooks = self._per_backend.get(backend)
        return hooks is not None and bool(hooks.callback.get_hookimpls())

    def registers_callbacks(self, backend: str) -> bool:
        hooks = self._per_backend.get(backend)
        return hooks is not None and bool(hooks.register.get_hookimpls())

    async def register_callbacks(
        self, backend: str, tenant: str, config: Any, callback_url: str, upstream: BoundUpstream
    ) -> None:
        await await_me_maybe(
            self._per_backend[backend].register(
                backend=backend,
                tenant=tenant,
                config=config,
                callback_url=callback_url,
                upstream=upstream,
            )
        )

    def sandboxes(self) -> list[Sandbox]:
        return [s for s in self.manager.hook.gateway_sandbox() if s is not None]

    async def publish_event(self, event: Event) -> bool:
        result = await await_me_maybe(self.manager.hook.gateway_publish_event(event=event))
        return bool(result)


class _BackendHooks:
    """The per-backend hook callers, computed once so a request pays a dict lookup."""

    def __init__(self, manager: pluggy.PluginManager, others: list[object]) -> None:
        self.credentials = manager.subset_hook_caller("gateway_upstream_credentials", others)
        self.operation = manager.subset_hook_caller("gateway_handle_operation", others)
        self.callback = manager.subset_hook_caller("gateway_handle_callback", others)
        self.register = manager.subset_hook_caller("gateway_register_callbacks", others)
