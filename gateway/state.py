"""Typed keys of the app's shared state and of per-request state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.backend import Backend
from gateway.callbacks import CallbackRegistrar
from gateway.contract import Contract
from gateway.exchange import Exchange
from gateway.metrics import Metrics
from gateway.owners import Owners
from gateway.plugins import PluginHost
from gateway.settings import Settings
from gateway.store.protocol import Store
from gateway.tenants import TenantDirectory
from gateway.upstream import UpstreamClient
from gateway.webhooks.delivery import DeliveryWorker
from gateway.webhooks.recovery import Recoverer

SETTINGS = web.AppKey("settings", Settings)
CONTRACT = web.AppKey("contract", Contract)
PLUGINS = web.AppKey("plugins", PluginHost)
TENANTS = web.AppKey("tenants", TenantDirectory)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
UPSTREAMS = web.AppKey("upstreams", dict[str, UpstreamClient])
BACKENDS = web.AppKey("backends", dict[str, Backend[Any]])  # built once per app
CALLBACKS = web.AppKey("callbacks", CallbackRegistrar)
EVENTS = web.AppKey("events", DeliveryWorker)
RECOVERER = web.AppKey("recoverer", Recoverer)
OWNERS = web.AppKey("owners", Owners)
UPLOADS = web.AppKey("uploads", Path)  # the folder multipart file parts are spooled into

EXCHANGE = web.RequestKey("exchange", Exchange)  # what the edge learned of the request
