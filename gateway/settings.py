"""Configuration: TOML in, frozen attrs out, every mistake named by its path.

Loading happens in two steps because a tenant's `[tenants.backends.<name>]` table is structured by
the backend's own config class, which is known only once the plugins are loaded: `load_settings`
checks everything the core owns, then `structure_backend_configs` checks the backends' tables.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from gateway.contract import default_contract
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


class ConfigError(Exception):
    """The configuration is wrong; `problems` lists each mistake as `path: message`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = tuple(problems)


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
class StoreSettings:
    # sqlite:///PATH or postgresql://USER@HOST:PORT/DB, or a secret reference to one ("env:NAME",
    # "file:PATH") when it carries a password: a password is never written in the file.
    url: str = "sqlite:///data/gateway.db"
    password: Secret | None = None  # PostgreSQL's, when the URL has none
    pool_size: int = 10  # PostgreSQL connections per process

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
    tenants: tuple[TenantSettings, ...] = ()

    def tenant(self, tenant_id: str) -> TenantSettings | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def structure_secret(value: object, _: type) -> Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ValueError('expected a secret reference: "env:NAME" or "file:PATH"')
        return Secret(value)

    converter.register_structure_hook(Secret, structure_secret)

    def structure_mapping(value: object, _: type) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError("expected a table")
        return dict(value)

    converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], structure_mapping)
    return converter


_converter = _make_converter()


def _format_exception(exc: BaseException, type_: type | None) -> str:
    """cattrs' wording, plus the reason a config class's own validator gave (it names the rule)."""
    message = cattrs.v.format_exception(exc, type_)
    if type_ is None and type(exc) is ValueError and str(exc):
        return f"{message}: {exc}"
    return message


def _describe(exc: Exception, prefix: str) -> list[str]:
    """cattrs' `msg @ $.a.b` becomes `a.b: msg`, the form operators read in `gateway check`."""
    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        message, _, where = line.rpartition(" @ ")
        path = (prefix + where.removeprefix("$").lstrip(".")).rstrip(".")
        message = "missing" if message == "required field missing" else message
        lines.append(f"{path}: {message}")
    return lines


def structure_section(raw: Mapping[str, Any], cls: type[Any], path: str) -> Any:
    """Structure one table with the configuration converter; errors are named below `path`."""
    try:
        return _converter.structure(raw, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise ConfigError(_describe(exc, path + "." if path else "")) from None


def load_settings(raw: Mapping[str, Any]) -> Settings:
    """Check and structure what the core owns; backend tables stay raw (see module docstring)."""
    settings: Settings = structure_section(raw, Settings, "")
    problems: list[str] = []
    seen: set[str] = set()
    for i, tenant in enumerate(settings.tenants):
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
        if tenant.default_backend and tenant.default_backend not in tenant.backends:
            problems.append(
                f"{where}.default_backend: {tenant.default_backend!r} is not configured"
            )
    problems.extend(_store_problems(settings.store))
    if problems:
        raise ConfigError(problems)
    return settings


def _store_problems(store: StoreSettings) -> list[str]:
    if store.url.startswith(("env:", "file:")):
        return []  # read when the store opens, like every secret
    parts = urllib.parse.urlsplit(store.url)
    if parts.scheme == "sqlite":
        return []
    if parts.scheme not in {"postgresql", "postgres"}:
        return ["store.url: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"]
    problems = []
    if parts.password:
        problems.append(
            'store.url: a password is never written in the file: use url = "env:NAME" or'
            " store.password"
        )
    if store.pool_size < 1:
        problems.append("store.pool_size: at least 1")
    return problems


def read_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from `path`, else `$GATEWAY_CONFIG`, else the defaults."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return load_settings({})
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    return load_settings(raw)


def structure_backend_configs(
    settings: Settings, config_types: Mapping[str, type[Any]]
) -> dict[tuple[str, str], Any]:
    """Each tenant's backend tables, structured by the backend's class: {(tenant, name): config}."""
    configs: dict[tuple[str, str], Any] = {}
    problems: list[str] = []
    for i, tenant in enumerate(settings.tenants):
        for name, raw in tenant.backends.items():
            where = f"tenants[{i}].backends.{name}"
            config_type = config_types.get(name)
            if config_type is None:
                known = ", ".join(sorted(config_types)) or "none"
                problems.append(f"{where}: no installed backend is called {name!r} ({known})")
                continue
            try:
                configs[(tenant.id, name)] = structure_section(raw, config_type, where)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return configs
