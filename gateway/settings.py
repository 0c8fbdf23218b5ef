"""Configuration: TOML in, frozen attrs out, every mistake named by its path.

Loading happens in two steps because a tenant's `[tenants.backends.<name>]` table is structured by
the backend's own config class, which is known only once the plugins are loaded: `load_settings`
checks everything the core owns, then `structure_backend_configs` checks the backends' tables.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from gateway.contract import default_contract
from gateway.upstream import UpstreamPolicy
from gateway.values import Secret, SecretUnavailable

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

    def __init__(self, problems: Sequence[str], *, headline: str = "invalid configuration") -> None:
        super().__init__(f"{headline}:\n  " + "\n  ".join(problems) if headline else problems[0])
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
class RetentionSettings:
    # Seconds an event is kept, with its deliveries and attempts (30 days: a month of history to
    # list and redeliver); 0 keeps them forever. One still being delivered stays until it ends.
    events: float = attrs.field(default=30 * 86400.0, validator=attrs.validators.ge(0.0))
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
    pool_size: int = 10  # PostgreSQL connections per process
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

    # TOML has its own types: a port written "8080" or a flag written 1 is a mistake to report,
    # not a value to coerce (cattrs' default hooks call int(), str(), bool()).
    def strict(kind: type, accepts: tuple[type, ...]) -> Callable[[object, type], Any]:
        def structure(value: object, _: type) -> Any:
            if not isinstance(value, accepts) or (kind is not bool and isinstance(value, bool)):
                raise WrongType(value)
            return kind(value)

        return structure

    converter.register_structure_hook(int, strict(int, (int,)))
    converter.register_structure_hook(float, strict(float, (int, float)))
    converter.register_structure_hook(str, strict(str, (str,)))
    converter.register_structure_hook(bool, strict(bool, (bool,)))

    def structure_secret(value: object, _: type) -> Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise WrongType(value)
        return Secret(value)

    converter.register_structure_hook(Secret, structure_secret)

    def structure_mapping(value: object, _: type) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise WrongType(value)
        return dict(value)

    converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], structure_mapping)

    # TOML keys are strings: a table keyed by integers (PICTOFiT's stateId map) reads "1" as 1.
    def int_keyed(t: Any) -> bool:
        return typing.get_origin(t) in {dict, Mapping} and typing.get_args(t)[:1] == (int,)

    def structure_int_keyed(value: object, t: Any) -> dict[int, Any]:
        if not isinstance(value, Mapping):
            raise WrongType(value)
        value_type = typing.get_args(t)[1]
        out = {}
        for key, item in value.items():
            if not (isinstance(key, int) or re.fullmatch(r"-?[0-9]+", str(key))):
                raise ValueError(f"keys must be whole numbers, not {key!r}")
            out[int(key)] = converter.structure(item, value_type)
        return out

    converter.register_structure_hook_func(int_keyed, structure_int_keyed)
    return converter


_converter = _make_converter()


class WrongType(ValueError):
    """A value of the wrong TOML type; the message names the expected type from the field's."""

    def __init__(self, value: object) -> None:
        super().__init__(f"a {_toml_kind(value)}")
        self.found = _toml_kind(value)


def _toml_kind(value: object) -> str:
    """What a TOML value is called, never the value itself (it may be a pasted secret)."""
    kinds: tuple[tuple[type, str], ...] = ((bool, "boolean"), (int, "integer"), (float, "float"))
    kinds += ((str, "string"), (Mapping, "table"), (list, "array"), (tuple, "array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "date or time")


def _expected(t: Any) -> str:
    """A field's type as an operator reads it: `"json" or "console"`, `a whole number`."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is Secret:
        return 'a secret reference, "env:NAME" or "file:PATH"'
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin in {types.UnionType, typing.Union}:
        return " or ".join(_expected(a) for a in args if a is not type(None))
    if origin in {tuple, list, Sequence} or t in {tuple, list}:
        return "an array" if not args else f"an array of {_plural(args[0])}"
    if origin in {dict, Mapping} or t in {dict, Mapping} or attrs.has(t):
        return "a table"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return names.get(t, getattr(t, "__name__", str(t)))


def _plural(t: Any) -> str:
    plurals = {int: "whole numbers", float: "numbers", str: "strings"}
    return plurals.get(t, "tables" if attrs.has(t) else "values")


# attrs' comparison validators say "'port' must be <= 65535: 99999"; operators read words, and
# the value is left out (it may be a pasted secret).
_VALIDATOR = re.compile(r"^'?(?P<name>\w+)'?(?:: | (?=must ))(?P<rule>.+)$", re.DOTALL)
_COMPARISONS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}
_COMPARISON = re.compile(r"^must be (<=|>=|<|>) (\S+?)(?:: .*)?$", re.DOTALL)


def _validator_rule(message: str) -> tuple[str | None, str]:
    """(field, rule) from a validator's message that starts with the field's name."""
    match = _VALIDATOR.match(message)
    if match is None:
        return None, message
    rule = match["rule"]
    if comparison := _COMPARISON.match(rule):
        op, bound = comparison.groups()
        with contextlib.suppress(ValueError):
            bound = f"{float(bound):g}"
        rule = f"must be {_COMPARISONS[op]} {bound}"
    return match["name"], rule


def _format_exception(exc: BaseException, type_: Any) -> str:
    """One leaf of cattrs' detailed validation in plain words; `|field|` marks a validator's."""
    if isinstance(exc, KeyError):
        return "missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown keys: {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, WrongType) and type_ is not None:
        return f"must be {_expected(type_)}, not a {exc.found}"
    if type_ is not None:  # a hook refused the value: say what the field takes
        return f"must be {_expected(type_)}"
    field, rule = _validator_rule(str(exc) or type(exc).__name__)
    return f"|{field}|{rule}" if field else rule


def _describe(exc: Exception, prefix: str) -> list[str]:
    """cattrs' `msg @ $.a.b` becomes `a.b: msg`, the form operators read in `gateway check`."""
    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        message, _, where = line.rpartition(" @ ")
        path = prefix + where.removeprefix("$").lstrip(".")
        if message.startswith("|"):  # a class's validator named its field
            field, _, message = message[1:].partition("|")
            path = f"{path.rstrip('.')}.{field}" if path.rstrip(".") else field
        lines.append(f"{path.rstrip('.')}: {message}")
    return lines


def _unknown_keys(raw: object, cls: type[Any], path: str, problems: list[str]) -> Any:
    """`raw` without the keys `cls` does not know, each reported with the nearest known one;
    and the validators of the fields that are right run even when others in the table are wrong
    (cattrs runs a class's validators only once every field of it has structured)."""
    if not isinstance(raw, Mapping):
        return raw
    fields = {f.alias or f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
    kept = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        field = fields.get(key)
        if field is None:
            kind = "table" if isinstance(value, Mapping) else "setting"
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(fields)}"
            problems.append(f"{where}: unknown {kind}{hint}")
            continue
        kept[key] = _nested(value, field.type, where, problems)
        if field.validator is not None and field.converter is None:
            try:
                checked = _converter.structure(value, field.type)
            except Exception:  # noqa: S112 - a wrong type: cattrs reports it with its path
                continue
            try:
                field.validator(None, field, checked)
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {_validator_rule(str(exc))[1]}")
    return kept


def _nested(value: object, t: Any, path: str, problems: list[str]) -> Any:
    """Descend into the tables a field holds: an attrs class, an optional one, an array of them."""
    args = [a for a in typing.get_args(t) if a is not type(None) and a is not Ellipsis]
    if attrs.has(t):
        return _unknown_keys(value, t, path, problems)
    if typing.get_origin(t) in {types.UnionType, typing.Union} and len(args) == 1:
        return _nested(value, args[0], path, problems)
    if typing.get_origin(t) is tuple and len(args) == 1 and isinstance(value, list):
        return [_nested(v, args[0], f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _structure(raw: object, cls: type[Any], path: str, problems: list[str]) -> Any:
    """`raw` as `cls`, or None with every mistake in it appended to `problems`."""
    found: list[str] = []
    cleaned = _unknown_keys(raw, cls, path, found) if attrs.has(cls) else raw
    try:
        return _converter.structure(cleaned, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        found.extend(_describe(exc, path + "." if path else ""))
        return None
    finally:
        problems.extend(dict.fromkeys(found))  # a validator's rule may be found twice


def structure_section(raw: Mapping[str, Any], cls: type[Any], path: str) -> Any:
    """Structure one table with the configuration converter; errors are named below `path`."""
    problems: list[str] = []
    value = _structure(raw, cls, path, problems)
    if problems:
        raise ConfigError(problems)
    return value


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
        values[name] = _structure(raw[name], typing.cast(type, field.type), name, problems)
    tenants = raw.get("tenants", [])
    if isinstance(tenants, list):
        structured = [
            _structure(t, TenantSettings, f"tenants[{i}]", problems) for i, t in enumerate(tenants)
        ]
        values["tenants"] = tuple(structured)
        problems.extend(_tenant_problems(structured))
    else:
        problems.append(
            f"tenants: must be an array of tables ([[tenants]]), not a {_toml_kind(tenants)}"
        )
    if (server := values.get("server")) is not None and not 0 <= server.port <= 65535:
        problems.append("server.port: must be a port number, 0 to 65535 (0: any free port)")
    if (store := values.get("store")) is not None:
        problems.extend(_store_problems(store))
        window = values.get("events", EventsSettings()).dedupe_window
        if 0 < store.retention.events < window:
            # A callback repeated after its event was purged would be delivered again.
            problems.append(
                f"store.retention.events: must be at least events.dedupe_window ({window:g} s),"
                " or 0 to keep events forever"
            )
    if len(problems) > before or any(v is None for v in values.values()):
        return None
    return Settings(**values)


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
            config_type = config_types.get(name)
            if config_type is None:
                known = ", ".join(sorted(config_types)) or "none"
                problems.append(f"{where}: no installed backend is called {name!r} ({known})")
                continue
            config = _structure(table, config_type, where, problems)
            if config is not None:
                configs[(str(tenant.get("id")), name)] = config
            problems.extend(_unreadable_refs(table, config_type, where))
    if settings is not None:
        problems.extend(unreadable_secrets(_store_secrets(settings.store), "store"))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, configs


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


def secret_settings(config: object, path: str = "") -> Iterator[tuple[str, Secret]]:
    """Every secret reference in a config object, with its path below it (`api_key`,
    `token.password`)."""
    if not attrs.has(type(config)):
        return
    for field in attrs.fields(typing.cast(type[attrs.AttrsInstance], type(config))):
        value = getattr(config, field.name)
        where = f"{path}.{field.name}" if path else field.name
        if isinstance(value, Secret):
            yield where, value
        else:
            yield from secret_settings(value, where)


def _unreadable_refs(raw: object, cls: Any, path: str) -> list[str]:
    """Like `unreadable_secrets`, from a raw table along its class's fields, so that a table
    with another mistake still has its secrets checked."""
    args = [a for a in typing.get_args(cls) if a is not type(None)]
    if typing.get_origin(cls) in {types.UnionType, typing.Union} and len(args) == 1:
        cls = args[0]
    if cls is Secret and isinstance(raw, str) and raw.startswith(("env:", "file:")):
        problem = _unreadable(Secret(raw))
        return [f"{path}: {problem}"] if problem else []
    if not (attrs.has(cls) and isinstance(raw, Mapping)):
        return []
    fields = {f.alias or f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
    problems = []
    for key, value in raw.items():
        if key in fields:
            problems += _unreadable_refs(value, fields[key].type, f"{path}.{key}")
    return problems


def unreadable_secrets(config: object, path: str) -> list[str]:
    """`path.setting: reason` for each secret reference of `config` that cannot be read now
    (the reason names the reference, never a value)."""
    return [
        f"{where}: {problem}"
        for where, secret in secret_settings(config, path)
        if (problem := _unreadable(secret))
    ]


def _unreadable(secret: Secret) -> str | None:
    try:
        return None if secret.reveal() else f"{secret.ref} is empty"
    except SecretUnavailable as exc:
        return str(exc)


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
