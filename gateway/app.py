"""The app factory: reads like a checklist of what the gateway is made of."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver
from opentelemetry.sdk.trace.export import SpanExporter

from gateway import wire
from gateway.backend import BackendContext
from gateway.callbacks import CallbackRegistrar
from gateway.config_loading import structure_backend_configs
from gateway.dispatch import wire_dispatch
from gateway.events import SUBSCRIPTION_DISABLED, CoreEvents
from gateway.logs import SECRETS, add_processor, remove_processor
from gateway.metrics import Metrics
from gateway.middleware import MB
from gateway.owners import Owners
from gateway.payloads import SubscriptionDisabledData
from gateway.plugins import PluginHost
from gateway.redaction import shown_url
from gateway.routes import add_routes
from gateway.settings import Settings, StoreSettings
from gateway.state import (
    BACKENDS,
    CALLBACKS,
    CONTRACT,
    EVENTS,
    METRICS,
    OWNERS,
    PLUGINS,
    RECOVERER,
    SETTINGS,
    STORE,
    TENANTS,
    UPLOADS,
    UPSTREAMS,
)
from gateway.store.opening import open_store
from gateway.store.protocol import Store
from gateway.store.records import Subscription
from gateway.store.retention import Purger, RetentionPolicy
from gateway.telemetry.clients import DeliveryTracer
from gateway.telemetry.provider import TELEMETRY, Telemetry, add_trace_ids
from gateway.telemetry.server import server_middleware
from gateway.tenants import TenantDirectory
from gateway.upstream import CredentialsRequest, UpstreamClient
from gateway.values import Credentials, Event
from gateway.webhooks.delivery import DeliveryWorker
from gateway.webhooks.filters import Filters
from gateway.webhooks.metrics import WebhookMetrics
from gateway.webhooks.recovery import POLL as RECOVERY_POLL, Recoverer


def create_app(
    settings: Settings,
    *,
    extra_plugins: Iterable[object] = (),
    resolver: AbstractResolver | None = None,
    span_exporter: SpanExporter | None = None,
) -> web.Application:
    """The gateway as an aiohttp app; resources open on start-up and close on clean-up.
    `resolver` looks up webhook targets' names (the system's by default); `span_exporter`
    receives the spans instead of `[telemetry]`'s collector (tests)."""
    store = _open_store(settings.store)
    metrics = Metrics()
    store.filters = Filters(metrics.registry)
    # [telemetry]: spans, and trace ids in the logs; without it, nothing of tracing runs.
    telemetry = Telemetry(settings.telemetry, span_exporter) if settings.telemetry else None

    async def announce_disabled(subscription: Subscription, reason: str) -> None:
        disabled = SubscriptionDisabledData(subscription.id, shown_url(subscription.url), reason)
        data = wire.unstructure(disabled)
        event = Event.new(SUBSCRIPTION_DISABLED, data, tenant=subscription.tenant, backend=None)
        await plugins.publish_event(event)

    worker = DeliveryWorker(
        store=store,
        settings=settings.events,
        metrics=WebhookMetrics(metrics.registry),
        on_disabled=announce_disabled,
        resolver=resolver,
    )
    if telemetry is not None:
        worker.tracer = DeliveryTracer(telemetry.tracer, store)
    plugins = PluginHost.build(
        blocked=settings.plugins.blocked,
        core=[CoreEvents(store, settings.events, worker)],
        extra=extra_plugins,
    )
    # The core contract with the backends' fragments merged in: routes, validation, /openapi.*
    # and /docs all read this one.
    contract = plugins.contract()
    configs = structure_backend_configs(settings, plugins.config_types)

    app = web.Application(
        # The edge wraps each route (gateway.middleware.at_edge): no middleware, unless tracing.
        middlewares=() if telemetry is None else (server_middleware(telemetry, store),),
        client_max_size=settings.server.max_upload_mb * MB,
    )
    app[SETTINGS] = settings
    app[CONTRACT] = contract
    app[PLUGINS] = plugins
    app[TENANTS] = TenantDirectory(settings, configs)
    app[STORE] = store
    app[METRICS] = metrics
    app[UPSTREAMS] = {}
    app[BACKENDS] = {}
    app[EVENTS] = worker
    # Recoveries a stopped process left are dead leases too: looked for no more often than those.
    recovery_poll = max(RECOVERY_POLL, settings.events.poll_interval)
    app[RECOVERER] = Recoverer(
        store, owner=worker.owner, wake_workers=worker.wake, poll=recovery_poll
    )
    app[OWNERS] = Owners(store)
    if telemetry is not None:
        app[TELEMETRY] = telemetry
        app.cleanup_ctx.append(_telemetry)  # first: it flushes the spans of all the others

    app.cleanup_ctx.append(_uploads)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_purger)
    app.cleanup_ctx.append(_backends)
    app.cleanup_ctx.append(_callbacks)
    app.cleanup_ctx.append(_sinks)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_recoveries)
    add_routes(app, app[CONTRACT])
    wire_dispatch(app)
    return app


def _open_store(settings: StoreSettings) -> Store:
    url = settings.resolved_url()
    password = settings.password.reveal() if settings.password else None
    if url != settings.url:  # read from a secret reference: the whole URL is a secret
        SECRETS.add(url)
    SECRETS.add(*(p for p in (password, urllib.parse.urlsplit(url).password) if p))
    return open_store(url, password=password, pool_size=settings.pool_size)


UPLOADS_PREFIX = "gateway-uploads-"
_UPLOADS_OF_PID = re.compile(rf"{UPLOADS_PREFIX}([1-9][0-9]{{0,9}})-.*")


async def _uploads(app: web.Application) -> AsyncIterator[None]:
    """The folder this app spools uploads into: its own (mkdtemp makes it 0700, so other users
    cannot read uploads), named after the process, and removed with anything in it once the app
    has stopped. Those of processes that died without stopping (SIGKILL) go at the next start."""
    folder = Path(tempfile.mkdtemp(prefix=f"{UPLOADS_PREFIX}{os.getpid()}-"))
    _sweep_dead_uploads(folder.parent)
    app[UPLOADS] = folder
    yield
    shutil.rmtree(folder, ignore_errors=True)


def _sweep_dead_uploads(root: Path) -> None:
    for folder in root.glob(f"{UPLOADS_PREFIX}*"):
        match = _UPLOADS_OF_PID.fullmatch(folder.name)
        try:
            if match is None or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(match[1]), 0)  # signal 0: is the process alive? (sends nothing)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # alive under another user, or gone meanwhile


async def _telemetry(app: web.Application) -> AsyncIterator[None]:
    """Trace ids on the log lines while the app runs; the spans still queued exported at the
    end (the other contexts have stopped by then: theirs are in)."""
    add_processor(add_trace_ids)
    yield
    remove_processor(add_trace_ids)
    await app[TELEMETRY].shutdown()


async def _store(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


async def _purger(app: web.Application) -> AsyncIterator[None]:
    """The store's retention, in the background from start-up (stopped before the store closes)."""
    retention = app[SETTINGS].store.retention
    policy = RetentionPolicy(
        retention.events or None, retention.batch, retention.interval, retention.payloads
    )
    purger = Purger(app[STORE], policy, app[METRICS].store)
    purger.start()
    yield
    await purger.stop()


async def _backends(app: web.Application) -> AsyncIterator[None]:
    """Each installed backend, built once for the app, with its upstream client (one session and
    breaker); the client asks the backend for credentials before every attempt."""
    for name, backend_type in app[PLUGINS].backends.items():

        async def credentials(request: CredentialsRequest[Any], name: str = name) -> Credentials:
            return await app[BACKENDS][name].credentials(request)

        client = UpstreamClient(
            name,
            policy=app[SETTINGS].upstream,
            credentials=credentials,  # until the backend exists: it is built with its client
            metrics=app[METRICS].upstream,
            secrets=SECRETS,
        )
        client.tracer = app[TELEMETRY].upstream if TELEMETRY in app else None
        await client.start()
        app[UPSTREAMS][name] = client
        backend = backend_type(BackendContext(name=name, upstream=client))
        app[BACKENDS][name] = backend
        client.credentials = backend.credentials  # called directly: one coroutine less an attempt
    yield
    for backend in app[BACKENDS].values():
        await backend.aclose()
    for client in app[UPSTREAMS].values():
        await client.close()


async def _callbacks(app: web.Application) -> AsyncIterator[None]:
    """Register upstream callbacks in the background; keep trying until each succeeds."""
    registrar = CallbackRegistrar(
        backends=app[BACKENDS],
        tenants=app[TENANTS],
        public_url=app[SETTINGS].server.public_url,
    )
    app[CALLBACKS] = registrar
    registrar.start()
    yield
    await registrar.stop()


async def _sinks(app: web.Application) -> AsyncIterator[None]:
    """Each installed sink, built once for the app and handed to the delivery worker; closed
    after the worker has stopped (its attempts under way finished first)."""
    transports = app[EVENTS].transports
    built = [sink_type(transports.sink_context()) for sink_type in app[PLUGINS].sinks.values()]
    for sink in built:
        transports.add_sink(sink)
    yield
    for sink in built:
        await sink.aclose()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """The delivery workers of this process: what is due (and leases left by a crash) goes out."""
    await app[EVENTS].start()
    yield
    await app[EVENTS].stop()


async def _recoveries(app: web.Application) -> AsyncIterator[None]:
    """Bulk recoveries, carried out in the background (those a previous process left too);
    stopped before the workers, which then send what the last batch queued."""
    app[RECOVERER].start()
    yield
    await app[RECOVERER].stop()
