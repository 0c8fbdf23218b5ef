"""The plugin manager, built per app: which backends are installed, and the broadcast hooks.

Load order is deterministic (as tox does it): blocked names from the configuration, the core's own
plugins, the `gateway.backends` entry points, the `extra_plugins` given to `create_app`, then
`check_pending()` so that a misspelled hook fails at start-up instead of being silently ignored.
Backends are registered as classes (`gateway_register_backends`); `backends.py` builds them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import pluggy

from gateway import hookspecs
from gateway.backend import Backend, Sandbox
from gateway.values import Event

ENTRY_POINT_GROUP = "gateway.backends"
PROJECT = "gateway"
T = TypeVar("T")

BackendType = type[Backend[Any]]
_DECLARED = ("name", "version", "config_type", "capabilities")


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


def _check_declaration(backend: object, plugin: str) -> BackendType:
    if not (inspect.isclass(backend) and issubclass(backend, Backend)):
        raise PluginError(f"plugin {plugin} registered {backend!r}, not a Backend subclass")
    missing = [name for name in _DECLARED if not hasattr(backend, name)]
    if missing:
        raise PluginError(f"backend {backend.__name__} of plugin {plugin} lacks {missing}")
    return backend


class PluginHost:
    """The installed backends' classes, by name, and typed access to the broadcast hooks."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.backends: dict[str, BackendType] = {}
        for plugin in manager.get_plugins():
            name = manager.get_name(plugin) or repr(plugin)
            registered: list[object] = []
            hook = manager.subset_hook_caller(
                "gateway_register_backends", [p for p in manager.get_plugins() if p is not plugin]
            )
            hook(register=registered.append)
            for backend in registered:
                checked = _check_declaration(backend, name)
                if checked.name in self.backends:
                    raise PluginError(f"two plugins register the backend {checked.name!r}")
                self.backends[checked.name] = checked

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
        return {name: backend.config_type for name, backend in self.backends.items()}

    def check_capabilities(self, backend_operations: frozenset[str]) -> None:
        """Every capability a backend declares is an operation the contract gives backends
        (`x-gateway-backend`); anything else is a mistake found at start-up, not a dead route."""
        for name, backend in self.backends.items():
            unknown = sorted(backend.capabilities - backend_operations)
            if unknown:
                raise PluginError(
                    f"backend {name} declares operations the contract does not give backends:"
                    f" {', '.join(unknown)}"
                )

    def serves(self, backend: str, operation_id: str) -> bool:
        found = self.backends.get(backend)
        return found is not None and operation_id in found.capabilities

    def sandboxes(self) -> list[Sandbox]:
        return [s for s in self.manager.hook.gateway_sandbox() if s is not None]

    async def publish_event(self, event: Event) -> bool:
        result = await await_me_maybe(self.manager.hook.gateway_publish_event(event=event))
        return bool(result)
