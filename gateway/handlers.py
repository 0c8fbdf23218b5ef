"""The operations the core answers itself: operations endpoints, the contract, backends, events."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway import docs, payloads, wire
from gateway.callbacks import SyncState
from gateway.events import CORE_EVENT_TYPES
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.payloads import EventType, ReadinessCheck
from gateway.secret_health import unreadable_settings
from gateway.state import (
    CALLBACKS,
    CONTRACT,
    EXCHANGE,
    METRICS,
    PLUGINS,
    STORE,
    TENANTS,
    UPSTREAMS,
)
from gateway.store.errors import StoreUnavailable

STORE_PING_TIMEOUT = 2.0


async def get_health(request: web.Request) -> web.Response:
    return wire.json_response(payloads.Health())


async def get_readiness(request: web.Request) -> web.Response:
    checks: dict[str, ReadinessCheck] = {}
    try:
        await asyncio.wait_for(request.app[STORE].ping(), STORE_PING_TIMEOUT)
        checks["store"] = ReadinessCheck(ok=True)
    except StoreUnavailable as exc:
        checks["store"] = ReadinessCheck(ok=False, detail=str(exc))
    except Exception as exc:  # any failure means not ready; say which
        detail = f"store unreachable: {type(exc).__name__}"
        checks["store"] = ReadinessCheck(ok=False, detail=detail)
    tenants = request.app[TENANTS].tenants
    checks["tenants"] = (
        ReadinessCheck(ok=True, detail=f"{len(tenants)} configured")
        if tenants
        else ReadinessCheck(ok=False, detail="no tenant is configured")
    )
    # A secret removed or rotated away since start: which settings (calls needing them get 503).
    unreadable = unreadable_settings(tenants.values())
    checks["secrets"] = (
        ReadinessCheck(ok=False, detail=f"cannot be read: {', '.join(unreadable)}")
        if unreadable
        else ReadinessCheck(ok=True)
    )
    in_use = {name for tenant in tenants.values() for name in tenant.configs}
    for name in sorted(in_use):
        breaker = request.app[UPSTREAMS][name].breaker.state.value
        checks[f"backend:{name}"] = (
            ReadinessCheck(ok=True, detail=f"breaker {breaker}")
            if breaker != "open"
            else ReadinessCheck(ok=False, detail="breaker open: the upstream is failing")
        )
    # Tenants are counted, never named: anyone may read this. Each tenant sees its own state and
    # the reason in GET /v1/backends; operators in the `callbacks.sync_failed` log lines.
    by_backend: dict[str, list[str]] = {}
    for (_, backend), sync in request.app[CALLBACKS].states.items():
        by_backend.setdefault(backend, []).append(sync.state)
    for backend, states in sorted(by_backend.items()):
        synced, failed = states.count("synced"), states.count("failed")
        detail = f"{synced} of {len(states)} tenants synced"
        if synced < len(states):
            detail += f" ({failed} failed, {len(states) - synced - failed} pending)"
        checks[f"callbacks:{backend}"] = ReadinessCheck(ok=synced == len(states), detail=detail)
    ready = all(check.ok for check in checks.values())
    body = payloads.Readiness(status="ready" if ready else "not_ready", checks=checks)
    return wire.json_response(body, 200 if ready else 503)


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def get_contract_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CONTRACT].json_bytes, content_type="application/json")


async def get_contract_yaml(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CONTRACT].yaml_bytes, content_type="application/yaml")


async def get_docs(request: web.Request) -> web.Response:
    # The page follows the contract the gateway serves: revalidated at every visit.
    headers = {
        "Cache-Control": docs.CACHE_REVALIDATE,
        "Content-Security-Policy": docs.CONTENT_SECURITY_POLICY,
    }
    return web.Response(
        body=docs.page(request.app[CONTRACT]),
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )


async def get_docs_asset(request: web.Request) -> web.Response:
    """A file of /docs (the contract enumerates the names): cached for a year when asked for
    by the page's link, with its digest; otherwise revalidated by its ETag (304)."""
    asset = docs.asset(request.match_info["asset"])
    linked = request.query.get("v") == asset.digest
    headers = {
        "ETag": asset.etag,
        "Cache-Control": docs.CACHE_LINKED if linked else docs.CACHE_REVALIDATE,
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


async def list_backends(request: web.Request) -> web.Response:
    tenant = request[EXCHANGE].tenant
    upstreams = request.app[UPSTREAMS]
    registrar = request.app[CALLBACKS]
    items = [
        payloads.Backend(
            name=d.name,
            version=d.version,
            description=d.description,
            capabilities=sorted(d.capabilities),
            event_types=sorted(d.event_types),
            configured=d.name in tenant.configs,
            health=payloads.BackendHealth(
                breaker=upstreams[d.name].breaker.state.value,
                callbacks=_callback_health(registrar.state(tenant.id, d.name)),
            ),
        )
        for d in sorted(request.app[PLUGINS].backends.values(), key=lambda d: d.name)
    ]
    return wire.json_response(payloads.BackendList(items))


def _callback_health(sync: SyncState | None) -> payloads.CallbackHealth:
    if sync is None:
        return payloads.CallbackHealth("not_applicable")
    return payloads.CallbackHealth(sync.state, sync.detail or None)  # no empty detail


async def list_event_types(request: web.Request) -> web.Response:
    items = [EventType(t, text, None) for t, text in CORE_EVENT_TYPES.items()]
    for declaration in request.app[PLUGINS].backends.values():
        items.extend(
            EventType(t, text, declaration.name) for t, text in declaration.event_types.items()
        )
    return wire.json_response(payloads.EventTypeList(sorted(items, key=lambda item: item.type)))
