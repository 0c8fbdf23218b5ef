"""Configuration: TOML in, frozen attrs out, every mistake named by its path.

Loading happens in two steps because a tenant's `[tenants.backends.<name>]` table is structured by
the backend's own config class, which is known only once the plugins are loaded: `load_settings`
checks everything the core owns, then `structure_backend_configs` checks the backends' tables.
How a table is read and its mistakes worded is `gateway.config_reading`; secret references are
found and tried by `gateway.secret_refs`.
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
from typing import Any, Literal

import attrs

from gateway.config_reading import (
    ConfigError as ConfigError,
    structure_into,
    structure_section as structure_section,
    toml_kind,
)
from gateway.contract import default_contract
from gateway.secret_refs import (
    secret_settings as secret_settings,
    unreadable_named,
    unreadable_refs,
    unreadable_secrets as unreadable_secrets,
)
from gateway.upstream import UpstreamPolicy
from gateway.values import Secret

CONFIG_ENV = "GATEWAY_CONFIG"
KEY_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@functools.cache
def tenant_id_rule() -> re.Pattern[str]:
    """The contract's `TenantId`: the one rule for tenant ids, so that every configured tenant is
    one the callback routes accept."""
    schema = default_contract().document["components"]["parameters"]["TenantId"]["schema"]
    return re.compile(schema["pattern"])


_positive = attrs.validators.gt(0.0)
_at_least_one = attrs.validators.ge(1)


@attrs.frozen
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    max_upload_mb: int = 20
    # What a client may hold of a process (gateway.server). A request's headers must be in within
    # headers_timeout of the connection opening (of their first byte on a reused connection): real
    # clients send them in one packet, so 10 s is ample; nginx allows 60, Apache 20 to 40.
    headers_timeout: float = attrs.field(default=10.0, validator=_positive)
    # No body byte for this long while the gateway waits for one: cut off. A mobile link stalls
    # for seconds, not half a minute; nginx allows 60 s between two reads of a body.
    body_idle_timeout: float = attrs.field(default=30.0, validator=_positive)
    # An idle kept-alive connection is closed after this long (nginx's default): above the 60 s
    # of common load balancers, so they close first and never reuse a connection just closed.
    keepalive_timeout: float = attrs.field(default=75.0, validator=_positive)
    # Open connections per process; one more is answered 503 and closed. Several times what one
    # process serves at once, yet a slow-drip client needs 100 new connections a second to hold
    # them all against headers_timeout. The descriptors they need are reserved at start-up.
    max_connections: int = attrs.field(default=1000, validator=_at_least_one)
    # aiohttp's parser limits (its defaults): a longer request line is 414, a longer header field
    # or more header fields 431.
    max_line_size: int = attrs.field(default=8190, validator=_at_least_one)
    max_field_size: int = attrs.field(default=8190, validator=_at_least_one)
    max_headers: int = attrs.field(default=128, validator=_at_least_one)


@attrs.frozen
class RetentionSettings:
    # Seconds an event is kept, with its deliveries and attempts (30 days: a month of history to
    # list and redeliver); 0 keeps them forever. One still being delivered stays until it ends.
    events: float = attrs.field(default=30 * 86400.0, validator=attrs.validators.ge(0.0))
    # Seconds an event keeps its payload (`data`), when that must go sooner than the event: it
    # then lists without it (`payloadPurged`) and can no longer be redelivered. Unset: as long
    # as the event.
    payloads: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    # Seconds between purge rounds, and events (each with its ~10 deliveries and attempts), or
    # other records, deleted per transaction: ~10 ms on SQLite, which ingest and delivery share.
    interval: float = attrs.field(default=300.0, validator=_positive)
    batch: int = attrs.field(default=100, validator=_at_least_one)


@attrs.frozen
class StoreSettings:
    # sqlite:///PATH or postgresql://USER@HOST:PORT/DB, or a secret reference to one ("env:NAME",
    # "file:PATH") when it carries a password: a password is never written in the file.
    url: str = "sqlite:///data/gateway.db"
    password: Secret | None = None  # PostgreSQL's, when the URL has none
    pool_size: int = 10  # PostgreSQL connections per process (and half as many for listings)
    # What the store forgets, in the background; idempotency records go once past their TTL.
    retention: RetentionSettings = attrs.field(factory=RetentionSettings)

    def resolved_url(self) -> str:
        """The URL itself, read from its reference when it is one."""
        if self.url.startswith(("env:", "file:")):
            return Secret(self.url).reveal()
        return self.url

    def scheme(self) -> str:
        return self.resolved_url().partition("://")[0]


@attrs.frozen
class LogSettings:
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


@attrs.frozen
class IdempotencySettings:
    ttl: float = 86400.0  # how long an answer is replayed for its key
    wait: float = 60.0  # how long a duplicate waits for the first request before a 409


DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@attrs.frozen
class EventsSettings:
    # Hosts (exact, or "*.suffix") and CIDR ranges webhook URLs may point at.
    allowed_targets: tuple[str, ...] = ("127.0.0.0/8", "::1/128", "localhost")
    # Seconds before each attempt; its length is the number of attempts.
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    jitter: float = 0.2  # each delay is stretched or shrunk by up to this fraction
    attempt_timeout: float = 15.0
    retry_after_cap: float = 36000.0  # a subscriber's Retry-After is honoured up to this
    disable_after: float = 5 * 86400.0  # failing continuously this long disables a subscription
    dedupe_window: float = 86400.0  # a repeated upstream callback within it is not fanned out
    rotation_grace: float = 86400.0  # default for how long the old secret still signs
    concurrency: int = 64  # deliveries in flight per process
    per_subscription: int = 8  # of which at most this many to one subscription
    # and at most this share of them to one tenant's subscriptions (slow ones hold their slots
    # until attempt_timeout: the rest stay free for the other tenants)
    tenant_share: float = attrs.field(
        default=0.5, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)]
    )
    max_subscriptions_per_tenant: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    lease: float = 60.0  # a claimed delivery returns to the queue if its worker dies
    # Idle workers look for due retries (and leases a dead process left) this often; new
    # deliveries wake them at once (across processes with PostgreSQL), so it can be long.
    poll_interval: float = 1.0

    def per_tenant(self) -> int:
        """A tenant's most deliveries in flight in one process."""
        return max(1, int(self.concurrency * self.tenant_share))


@attrs.frozen
class TelemetrySettings:
    """`[telemetry]`: spans exported over OTLP (HTTP/protobuf); absent, nothing is traced."""

    # The collector's OTLP/HTTP base URL (http://collector:4318): spans go to {endpoint}/v1/traces
    # unless the path already ends so.
    endpoint: str
    service_name: str = attrs.field(
        default="integration-gateway", validator=attrs.validators.min_len(1)
    )
    # The share of new traces recorded; a caller's sampled flag decides for the traces it starts.
    sampling_ratio: float = attrs.field(
        default=1.0, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    # Sent with every export (a collector's API key): secret references only, never values.
    headers: Mapping[str, Secret] = attrs.field(factory=dict)
    export_timeout: float = attrs.field(default=10.0, validator=_positive)

    def traces_url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


@attrs.frozen
class PluginSettings:
    blocked: tuple[str, ...] = ()


@attrs.frozen
class TenantSettings:
    id: str
    keys: tuple[str, ...]
    # Raw tables until `structure_backend_configs` turns them into each backend's config class.
    backends: Mapping[str, Any] = attrs.field(factory=dict)
    default_backend: str | None = None


@attrs.frozen
class Settings:
    server: ServerSettings = attrs.field(factory=ServerSettings)
    store: StoreSettings = attrs.field(factory=StoreSettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    upstream: UpstreamPolicy = attrs.field(factory=UpstreamPolicy)
    plugins: PluginSettings = attrs.field(factory=PluginSettings)
    idempotency: IdempotencySettings = attrs.field(factory=IdempotencySettings)
    events: EventsSettings = attrs.field(factory=EventsSettings)
    telemetry: TelemetrySettings | None = None  # tracing, only when configured
    tenants: tuple[TenantSettings, ...] = ()

    def tenant(self, tenant_id: str) -> TenantSettings | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)


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
