"""A configuration document into checked `Settings`: the file found and read, the core's tables
structured and their cross-field rules checked, the backends' tables and the secret references.

Loading happens in two steps because a tenant's `[tenants.backends.<name>]` table is structured by
the backend's own config class, which is known only once the plugins are loaded: `load_settings`
checks everything the core owns, then `structure_backend_configs` checks the backends' tables
(`check_config` does both at once, for `gateway check` and `serve`). How a table is read and its
mistakes worded is `gateway.config_converter`; secret references are found and tried by
`gateway.secret_refs`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from gateway.config_converter import ConfigError, structure_into, structure_section, toml_kind
from gateway.contract import default_contract
from gateway.secret_refs import unreadable_named, unreadable_refs, unreadable_secrets
from gateway.settings import (
    EventsSettings,
    Settings,
    StoreSettings,
    TelemetrySettings,
    TenantSettings,
)
from gateway.values import Secret

CONFIG_ENV = "GATEWAY_CONFIG"
KEY_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@functools.cache
def tenant_id_rule() -> re.Pattern[str]:
    """The contract's `TenantId`: the one rule for tenant ids, so that every configured tenant is
    one the callback routes accept."""
    schema = default_contract().document["components"]["parameters"]["TenantId"]["schema"]
    return re.compile(schema["pattern"])


def load_settings(raw: Mapping[str, Any]) -> Settings:
    """Check and structure what the core owns; backend tables stay raw (see module docstring)."""
    problems: list[str] = []
    settings = _core_settings(raw, problems)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _core_settings(raw: Mapping[str, Any], problems: list[str]) -> Settings | None:
    """Each table structured on its own, so that a mistake in one hides none in another; then
    the rules that span fields. None when any table is wrong."""
    if not isinstance(raw, Mapping):
        problems.append("the configuration must be a TOML document")
        return None
    sections = {f.name: f for f in attrs.fields(attrs.resolve_types(Settings))}
    for key in raw.keys() - sections.keys():
        kind = "table" if isinstance(raw[key], Mapping | list) else "setting"
        close = difflib.get_close_matches(key, list(sections), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sections)}"
        problems.append(f"{key}: unknown {kind}{hint}")
    values: dict[str, Any] = {}
    before = len(problems)
    for name, field in sections.items():
        if name not in raw or name == "tenants":
            continue
        values[name] = structure_into(raw[name], _section_type(field.type), name, problems)
    tenants = raw.get("tenants", [])
    if isinstance(tenants, list):
        structured = [
            structure_into(t, TenantSettings, f"tenants[{i}]", problems)
            for i, t in enumerate(tenants)
        ]
        values["tenants"] = tuple(structured)
        problems.extend(_tenant_problems(structured))
    else:
        problems.append(
            f"tenants: must be an array of tables ([[tenants]]), not a {toml_kind(tenants)}"
        )
    if (server := values.get("server")) is not None and not 0 <= server.port <= 65535:
        problems.append("server.port: must be a port number, 0 to 65535 (0: any free port)")
    if (telemetry := values.get("telemetry")) is not None:
        problems.extend(_telemetry_problems(telemetry))
    if (store := values.get("store")) is not None:
        problems.extend(_store_problems(store))
        window = values.get("events", EventsSettings()).dedupe_window
        if 0 < store.retention.events < window:
            # A callback repeated after its event was purged would be delivered again.
            problems.append(
                f"store.retention.events: must be at least events.dedupe_window ({window:g} s),"
                " or 0 to keep events forever"
            )
        payloads = store.retention.payloads
        if payloads is not None and 0 < store.retention.events < payloads:
            problems.append(
                "store.retention.payloads: must be at most store.retention.events"
                f" ({store.retention.events:g} s): a payload goes with its event at the latest"
            )
    if len(problems) > before or any(v is None for v in values.values()):
        return None
    return Settings(**values)


def _section_type(declared: Any) -> type[Any]:
    """A table's class: an optional section (`TelemetrySettings | None`) is read as its class,
    so that its unknown keys are named as any other table's."""
    args = [a for a in typing.get_args(declared) if a is not type(None)]
    return typing.cast(type, args[0] if len(args) == 1 else declared)


def _telemetry_problems(telemetry: TelemetrySettings) -> list[str]:
    parts = urllib.parse.urlsplit(telemetry.endpoint)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return ["telemetry.endpoint: expected the collector's http(s)://HOST:PORT (OTLP/HTTP)"]
    return []


def _tenant_problems(tenants: Sequence[TenantSettings | None]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    owners: dict[str, str] = {}  # key digest -> where it was first seen
    for i, tenant in enumerate(tenants):
        if tenant is None:
            continue
        where = f"tenants[{i}]"
        if not tenant_id_rule().fullmatch(tenant.id):
            problems.append(
                f"{where}.id: letters, digits, '_' or '-' (a letter or digit first), at most 64"
            )
        if tenant.id in seen:
            problems.append(f"{where}.id: duplicate tenant id {tenant.id!r}")
        seen.add(tenant.id)
        for k, key in enumerate(tenant.keys):
            if not KEY_DIGEST.match(key):
                problems.append(f'{where}.keys[{k}]: expected "sha256:<64 hex digits>"')
            elif key in owners:
                # A key names one tenant: a second would make the caller's tenant a coin toss.
                problems.append(f"{where}.keys[{k}]: duplicate caller key (also {owners[key]})")
            else:
                owners[key] = f"{where}.keys[{k}]"
        if tenant.default_backend and tenant.default_backend not in tenant.backends:
            problems.append(
                f"{where}.default_backend: {tenant.default_backend!r} is not configured"
            )
    return problems


def _store_problems(store: StoreSettings) -> list[str]:
    problems = []
    if store.pool_size < 1:
        problems.append("store.pool_size: must be at least 1")
    if store.url.startswith(("env:", "file:")):
        return problems  # read when the store opens, like every secret
    parts = urllib.parse.urlsplit(store.url)
    if parts.scheme == "sqlite":
        return problems
    if parts.scheme not in {"postgresql", "postgres"}:
        problems.append(
            "store.url: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
        )
        return problems
    if parts.password:
        problems.append(
            'store.url: a password is never written in the file: use url = "env:NAME" or'
            " store.password"
        )
    return problems


def config_path(path: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """The configuration file to read: `path`, else `$GATEWAY_CONFIG`; none is a mistake that
    says how to give one (a gateway with no tenant would only answer 401)."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(
            [
                f"no configuration: give one with --config FILE or ${CONFIG_ENV}"
                " (gateway.example.toml shows every setting), or try the gateway with --sandbox"
            ],
            headline="",
        )
    return path


def read_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TOML document at `path`; an unreadable or malformed file is a `ConfigError`."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


def read_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from `path`, else `$GATEWAY_CONFIG`, else the defaults."""
    path = path or os.environ.get(CONFIG_ENV)
    return load_settings(read_raw(path)) if path else load_settings({})


def check_config(
    raw: Mapping[str, Any], config_types_for: Callable[[tuple[str, ...]], Mapping[str, type[Any]]]
) -> tuple[Settings, dict[tuple[str, str], Any]]:
    """Every mistake of a configuration in one `ConfigError`: the core's tables, each backend
    table (structured by `config_types_for(blocked)`, the installed backends' config classes),
    and every secret reference that cannot be read now. Backend tables are checked from the raw
    document, so that a mistake in the core's tables hides none in theirs."""
    problems: list[str] = []
    settings = _core_settings(raw, problems)
    blocked = settings.plugins.blocked if settings else _raw_blocked(raw)
    config_types = config_types_for(blocked)
    configs: dict[tuple[str, str], Any] = {}
    tenants = raw.get("tenants") if isinstance(raw, Mapping) else None
    for i, tenant in enumerate(tenants if isinstance(tenants, list) else []):
        backends = tenant.get("backends") if isinstance(tenant, Mapping) else None
        for name, table in backends.items() if isinstance(backends, Mapping) else ():
            where = f"tenants[{i}].backends.{name}"
            config_type = _config_type(config_types, name, where, problems)
            if config_type is None:
                continue
            config = structure_into(table, config_type, where, problems)
            if config is not None:
                configs[(str(tenant.get("id")), name)] = config
            problems.extend(unreadable_refs(table, config_type, where))
    if settings is not None:
        problems.extend(unreadable_secrets(_store_secrets(settings.store), "store"))
        if settings.telemetry is not None:
            problems.extend(unreadable_named(settings.telemetry.headers, "telemetry.headers"))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, configs


def _config_type(
    config_types: Mapping[str, type[Any]], name: str, where: str, problems: list[str]
) -> type[Any] | None:
    """The installed backend's config class for a `[tenants.backends.<name>]` table, or None
    with the mistake added to `problems`."""
    config_type = config_types.get(name)
    if config_type is None:
        known = ", ".join(sorted(config_types)) or "none"
        problems.append(f"{where}: no installed backend is called {name!r} ({known})")
    return config_type


def _raw_blocked(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """plugins.blocked when the core's tables did not structure (reported there)."""
    plugins = raw.get("plugins") if isinstance(raw, Mapping) else None
    blocked = plugins.get("blocked") if isinstance(plugins, Mapping) else None
    return tuple(b for b in blocked if isinstance(b, str)) if isinstance(blocked, list) else ()


@attrs.frozen
class _StoreSecrets:
    url: Secret | None
    password: Secret | None


def _store_secrets(store: StoreSettings) -> _StoreSecrets:
    url = Secret(store.url) if store.url.startswith(("env:", "file:")) else None
    return _StoreSecrets(url=url, password=store.password)


def structure_backend_configs(
    settings: Settings, config_types: Mapping[str, type[Any]]
) -> dict[tuple[str, str], Any]:
    """Each tenant's backend tables, structured by the backend's class: {(tenant, name): config}."""
    configs: dict[tuple[str, str], Any] = {}
    problems: list[str] = []
    for i, tenant in enumerate(settings.tenants):
        for name, raw in tenant.backends.items():
            where = f"tenants[{i}].backends.{name}"
            config_type = _config_type(config_types, name, where, problems)
            if config_type is None:
                continue
            try:
                configs[(tenant.id, name)] = structure_section(raw, config_type, where)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return configs
