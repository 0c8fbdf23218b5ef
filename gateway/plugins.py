"""The plugin manager, built per app: which backends are installed, and the broadcast hooks.

Load order is deterministic (as tox does it): blocked names from the configuration, the core's own
plugins, the `gateway.backends` then `gateway.sinks` entry points, the `extra_plugins` given to
`create_app`, then `check_pending()` so that a misspelled hook fails at start-up instead of being
silently ignored. Backends and sinks are registered as classes (`gateway_register_backends`,
`gateway_register_sinks`); the app builds one of each (`app._backends`, `app._sinks`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pluggy
import yaml

from gateway import hookspecs
from gateway.backend import Backend, Sandbox
from gateway.contract import Contract, ContractError
from gateway.fragments import merged_contract
from gateway.sink import Sink
from gateway.values import Event

ENTRY_POINT_GROUP = "gateway.backends"
SINK_ENTRY_POINT_GROUP = "gateway.sinks"
HTTP_SCHEMES = frozenset({"http", "https"})  # the core's own transport
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
    manager.load_setuptools_entrypoints(SINK_ENTRY_POINT_GROUP)
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


def _check_sink(sink: object, plugin: str) -> type[Sink]:
    if not (inspect.isclass(sink) and issubclass(sink, Sink)):
        raise PluginError(f"plugin {plugin} registered {sink!r}, not a Sink subclass")
    schemes = getattr(sink, "schemes", None)
    if not hasattr(sink, "name") or not isinstance(schemes, frozenset) or not schemes:
        raise PluginError(f"sink {sink.__name__} of plugin {plugin} lacks a name or schemes")
    if schemes & HTTP_SCHEMES:
        raise PluginError(f"sink {sink.name} of plugin {plugin} claims http(s), the core's own")
    return sink


def _registered(manager: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, object]]:
    """What each plugin registers through `hook_name`, with the plugin's name, in load order."""
    for name, plugin in manager.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        registered: list[object] = []
        hook = manager.subset_hook_caller(
            hook_name, [p for p in manager.get_plugins() if p is not plugin]
        )
        hook(register=registered.append)
        yield from ((name, item) for item in registered)


class PluginHost:
    """The installed backends' and sinks' classes, by name, and typed access to the broadcast
    hooks."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.backends: dict[str, BackendType] = {}
        for name, backend in _registered(manager, "gateway_register_backends"):
            checked = _check_declaration(backend, name)
            if checked.name in self.backends:
                raise PluginError(f"two plugins register the backend {checked.name!r}")
            self.backends[checked.name] = checked
        self.sinks: dict[str, type[Sink]] = {}
        served: dict[str, str] = {}  # scheme: sink name
        for name, sink in _registered(manager, "gateway_register_sinks"):
            checked_sink = _check_sink(sink, name)
            if checked_sink.name in self.sinks:
                raise PluginError(f"two plugins register the sink {checked_sink.name!r}")
            for scheme in sorted(checked_sink.schemes):
                if scheme in served:
                    raise PluginError(
                        f"sinks {served[scheme]} and {checked_sink.name} both serve {scheme}:"
                    )
                served[scheme] = checked_sink.name
            self.sinks[checked_sink.name] = checked_sink

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

    def fragments(self) -> dict[str, Mapping[str, Any]]:
        """The OpenAPI fragments of the backends that bring one, by backend name."""
        found: dict[str, Mapping[str, Any]] = {}
        for name, backend in self.backends.items():
            try:
                fragment = backend.openapi_fragment()
            except (ImportError, OSError, ValueError, yaml.YAMLError) as exc:
                raise PluginError(
                    f"backend {name}: its OpenAPI fragment {backend.openapi!r} cannot be read:"
                    f" {exc}"
                ) from exc
            if fragment is not None:
                found[name] = fragment
        return found

    def contract(self) -> Contract:
        """The contract these backends are served with: the core's, their fragments merged in,
        every operation a backend declares given to backends, and every operation a fragment
        brings served by its backend alone."""
        try:
            contract = merged_contract(self.fragments())
        except ContractError as exc:
            raise PluginError(str(exc)) from exc
        self.check_capabilities(contract.backend_operations)
        self.check_fragments(contract)
        return contract

    def check_fragments(self, contract: Contract) -> None:
        """What a fragment brings is its backend's: each operation among its `capabilities` and
        no other backend's, each webhook one of its `event_types`."""
        problems = []
        for operation_id, owner in sorted(contract.origins.items()):
            if operation_id not in self.backends[owner].capabilities:
                problems.append(
                    f"backend {owner}'s fragment brings {operation_id}, which backend {owner}"
                    " does not serve (it is not in its capabilities)"
                )
            problems += [
                f"backend {name} declares {operation_id}, which backend {owner}'s fragment"
                " brings (only the backend that brings an operation serves it)"
                for name, backend in sorted(self.backends.items())
                if name != owner and operation_id in backend.capabilities
            ]
        for event_type, owner in sorted(contract.webhook_origins.items()):
            declared = self.backends[owner].event_types
            if not any(_names(pattern, event_type) for pattern in declared):
                problems.append(
                    f"backend {owner}'s fragment documents the webhook {event_type}, an event"
                    f" type backend {owner} does not emit (it is not in its event_types)"
                )
        if problems:
            raise PluginError("\n  ".join(["backends' fragments are not theirs:", *problems]))

    def sandboxes(self) -> list[Sandbox]:
        return [s for s in self.manager.hook.gateway_sandbox() if s is not None]

    async def publish_event(self, event: Event) -> bool:
        result = await await_me_maybe(self.manager.hook.gateway_publish_event(event=event))
        return bool(result)


def _names(pattern: str, event_type: str) -> bool:
    """An `event_types` key names the type: itself, or `prefix.*` for every `prefix.<name>`."""
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type
