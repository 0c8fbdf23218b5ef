"""The configuration's values: a frozen attrs class per table, with its defaults and the rules
of a single field (attrs validators).

A document becomes these values, every mistake named by its path, in `gateway.config_loading`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from gateway.upstream import UpstreamPolicy
from gateway.values import Secret

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
