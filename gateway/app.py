"""The app factory: reads like a checklist of what the gateway is made of."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver

from gateway.backend import Credentials, Event
from gateway.callbacks import CallbackRegistrar
from gateway.contract import default_contract
from gateway.events import SUBSCRIPTION_DISABLED, CoreEvents
from gateway.logs import SECRETS
from gateway.metrics import Metrics
from gateway.middleware import MB, MIDDLEWARES
from gateway.owners import Owners
from gateway.plugins import PluginHost
from gateway.routes import add_routes
from gateway.server import track_requests
from gateway.settings import Settings, StoreSettings, structure_backend_configs
from gateway.state import (
    CALLBACKS,
    CONTRACT,
    EVENTS,
    METRICS,
    OWNERS,
    PLUGINS,
    SETTINGS,
    STORE,
    TENANTS,
    UPLOADS,
    UPSTREAMS,
)
from gateway.store import Store, Subscription, open_store
from gateway.tenants import TenantDirectory
from gateway.upstream import UpstreamClient
from gateway.webhooks.delivery import DeliveryWorker, WebhookMetrics


def create_app(
    settings: Settings,
    *,
    extra_plugins: Iterable[object] = (),
    resolver: AbstractResolver | None = None,
) -> web.Application:
    """The gateway as an aiohttp app; resources open on start-up and close on clean-up.
    `resolver` looks up webhook targets' names (the system's by default)."""
    store = _open_store(settings.store)
    metrics = Metrics()

    async def announce_disabled(subscription: Subscription, reason: str) -> None:
        data = {"subscriptionId": subscription.id, "url": subscription.url, "reason": reason}
        event = Event.new(SUBSCRIPTION_DISABLED, data, tenant=subscription.tenant, backend=None)
        await plugins.publish_event(event)

    worker = DeliveryWorker(
        store=store,
        settings=settings.events,
        metrics=WebhookMetrics(metrics.registry),
        on_disabled=announce_disabled,
        resolver=resolver,
    )
    plugins = PluginHost.build(
        blocked=settings.plugins.blocked,
        core=[CoreEvents(store, settings.events, worker)],
        extra=extra_plugins,
    )
    configs = structure_backend_configs(settings, plugins.config_types)

    app = web.Application(
        middlewares=(track_requests, *MIDDLEWARES),
        client_max_size=settings.server.max_upload_mb * MB,
    )
    app[SETTINGS] = settings
    app[CONTRACT] = default_contract()
    app[PLUGINS] = plugins
    app[TENANTS] = TenantDirectory(settings, configs)
    app[STORE] = store
    app[METRICS] = metrics
    app[UPSTREAMS] = {}
    app[EVENTS] = worker
    app[OWNERS] = Owners(store)

    app.cleanup_ctx.append(_uploads)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_upstreams)
    app.cleanup_ctx.append(_callbacks)
    app.cleanup_ctx.append(_webhooks)
    add_routes(app, app[CONTRACT])
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


async def _store(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


async def _upstreams(app: web.Application) -> AsyncIterator[None]:
    """One persistent client (session, breaker) per installed backend."""
    plugins = app[PLUGINS]
    for name in plugins.declarations:

        async def credentials(
            tenant: str, config: object, refresh: bool, backend: str = name
        ) -> Credentials:
            return await plugins.credentials(backend, tenant, config, refresh)

        client = UpstreamClient(
            name,
            policy=app[SETTINGS].upstream,
            credentials=credentials,
            metrics=app[METRICS].upstream,
            secrets=SECRETS,
        )
        await client.start()
        app[UPSTREAMS][name] = client
    yield
    for client in app[UPSTREAMS].values():
        await client.close()


async def _callbacks(app: web.Application) -> AsyncIterator[None]:
    """Register upstream callbacks in the background; keep trying until each succeeds."""
    registrar = CallbackRegistrar(
        plugins=app[PLUGINS],
        tenants=app[TENANTS],
        upstreams=app[UPSTREAMS],
        public_url=app[SETTINGS].server.public_url,
    )
    app[CALLBACKS] = registrar
    registrar.start()
    yield
    await registrar.stop()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """The delivery workers of this process: what is due (and leases left by a crash) goes out."""
    await app[EVENTS].start()
    yield
    await app[EVENTS].stop()
