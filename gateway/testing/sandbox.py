"""A gateway in front of a backend's sandbox (its simulator), both served on free local ports,
every answer checked against the contract."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port

from gateway.app import create_app
from gateway.backend import Sandbox
from gateway.config_loading import load_settings
from gateway.plugins import PluginHost
from gateway.state import CALLBACKS
from gateway.tenants import digest_key, new_key
from gateway.testing.contract_check import ContractCheck
from gateway.testing.subscriber import WebhookSubscriber
from gateway.testing.waiting import eventually

__all__ = [
    "SANDBOX_TENANT",
    "SandboxGateway",
    "StartGateway",
    "TenantTable",
    "find_sandbox",
    "sandbox_gateway",
]

SANDBOX_TENANT = "sandbox"

TenantTable = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]
"""Keys of a tenant's backend table, over the ones the sandbox's `tenant_config` gives (a key set
to None is left out); or a function of the sandbox's URL answering them, when a value names it."""

Client = TestClient[web.Request, web.Application]


@attrs.frozen
class SandboxGateway:
    """A running gateway whose tenant `tenant` uses backend `backend`, upstream its simulator.

    `client` calls the gateway (paths relative, e.g. `/v1/backends`) over a real socket; `auth()`
    gives the tenant's caller key as headers (`auth("other")`, another configured tenant's).
    `sandbox_app` is the simulator's application, its state under the plugin's own `AppKey`;
    `contract` holds what the contract check saw.
    """

    backend: str
    tenant: str
    caller_key: str = attrs.field(repr=False)
    client: Client
    sandbox_url: str
    sandbox_app: web.Application
    contract: ContractCheck
    # Every configured tenant's caller key, by tenant id (`tenant`'s is `caller_key`).
    caller_keys: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def url(self) -> str:
        """The gateway's base URL (also its `server.public_url`: callbacks come here)."""
        return str(self.client.make_url("")).rstrip("/")

    def auth(self, tenant: str | None = None, **extra: str) -> dict[str, str]:
        """The caller key of `tenant` (by default the first one) as headers, with `extra`."""
        key = self.caller_key if tenant is None else self.caller_keys[tenant]
        return {"Authorization": f"Bearer {key}", **extra}

    async def listing(self) -> dict[str, Any]:
        """This backend's entry in `GET /v1/backends`, as the tenant sees it."""
        response = await self.client.get("/v1/backends", headers=self.auth())
        assert response.status == 200, await response.text()
        items = (await response.json())["items"]
        found = [item for item in items if item["name"] == self.backend]
        assert found, f"{self.backend} is not in /v1/backends: {[i['name'] for i in items]}"
        entry: dict[str, Any] = found[0]
        return entry

    async def subscribe(
        self, subscriber: WebhookSubscriber, event_types: Sequence[str] = ("*",)
    ) -> dict[str, Any]:
        """Subscribe `subscriber` to `event_types` for the tenant; it verifies with the secret."""
        response = await self.client.post(
            "/v1/subscriptions",
            json={"url": subscriber.url, "eventTypes": list(event_types)},
            headers=self.auth(),
        )
        assert response.status == 201, await response.text()
        subscription: dict[str, Any] = await response.json()
        subscriber.secrets.append(subscription["secret"])
        return subscription


def find_sandbox(backend: str, plugins: Iterable[object] = ()) -> Sandbox:
    """The `Sandbox` backend `backend` offers, among the installed plugins and `plugins`."""
    host = PluginHost.build(extra=plugins)
    if backend not in host.backends:
        installed = ", ".join(sorted(host.backends)) or "none"
        raise LookupError(f"no backend is called {backend!r} (installed: {installed})")
    for sandbox in host.sandboxes():
        if sandbox.backend == backend:
            return sandbox
    raise LookupError(f"backend {backend!r} offers no sandbox (its gateway_sandbox hook)")


def _table(defaults: Mapping[str, Any], table: TenantTable | None, url: str) -> dict[str, Any]:
    overrides = table(url) if callable(table) else (table or {})
    merged = {**defaults, **overrides}
    return {key: value for key, value in merged.items() if value is not None}


def _merged(base: dict[str, Any], sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if "tenants" in sections:
        raise ValueError("the kit configures the tenant: pass tenant_config instead")
    return {**base, **{name: {**base.get(name, {}), **values} for name, values in sections.items()}}


@contextlib.asynccontextmanager
async def sandbox_gateway(
    backend: str,
    *,
    plugins: Iterable[object] = (),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    tenant_config: TenantTable | None = None,
    tenants: Mapping[str, TenantTable | None] | None = None,
    sandbox_app: web.Application | None = None,
    contract: ContractCheck | None = None,
) -> AsyncIterator[SandboxGateway]:
    """A gateway in front of `backend`'s sandbox, both served on free local ports.

    The backend comes from the installed plugins (entry points), or from `plugins` (plugin
    objects, as `create_app(extra_plugins=...)` takes them). `settings` overrides sections of the
    gateway's configuration (`{"upstream": {"max_attempts": 1}}`); `tenant_config` keys of the
    tenant's backend table (the sandbox's `tenant_config` gives the rest; see `TenantTable`).
    `tenants` configures these tenants instead of the one `sandbox` tenant: id -> its table's
    keys, each tenant with a caller key of its own, the first one the gateway's `tenant`.
    `sandbox_app` is served instead of the sandbox's own `make_app()` (a simulator tuned for the
    test, or with a test's middleware). The store is SQLite in a temporary folder. Start-up waits
    for callback registration to settle. Every answer is checked against the contract by
    `contract`, or by the gateway's own check, which fails the block when it ends; a `contract`
    passed in is the caller's to assert.
    """
    plugins = tuple(plugins)
    if tenants is not None and tenant_config is not None:
        raise ValueError("give the tenant's table in tenants, or tenant_config alone")
    tables = dict(tenants) if tenants is not None else {SANDBOX_TENANT: tenant_config}
    if not tables:
        raise ValueError("tenants names no tenant")
    sandbox = find_sandbox(backend, plugins)
    check = contract if contract is not None else ContractCheck()
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-kit-")))
        app_served = sandbox_app if sandbox_app is not None else sandbox.make_app()
        simulator = TestServer(app_served, host="127.0.0.1")
        await simulator.start_server()
        stack.push_async_callback(simulator.close)
        sandbox_url = str(simulator.make_url("")).rstrip("/")
        # The gateway's own port is chosen first: its public URL (for callbacks) names it.
        port = unused_port()
        keys = {tenant: new_key() for tenant in tables}
        defaults = sandbox.tenant_config(sandbox_url)
        base = {
            "store": {"url": f"sqlite:///{folder}/gateway.db"},
            "server": {"public_url": f"http://127.0.0.1:{port}"},
            "upstream": {"backoff_base": 0.001, "backoff_cap": 0.01},
            "tenants": [
                {
                    "id": tenant,
                    "keys": [digest_key(keys[tenant])],
                    "backends": {backend: _table(defaults, table, sandbox_url)},
                }
                for tenant, table in tables.items()
            ],
        }
        raw = _merged(base, settings or {})
        app = check.install(create_app(load_settings(raw), extra_plugins=plugins))
        client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        stack.push_async_callback(client.close)
        registrar = app[CALLBACKS]
        await eventually(lambda: all(s.state != "pending" for s in registrar.states.values()))
        first = next(iter(tables))
        yield SandboxGateway(
            backend=backend,
            tenant=first,
            caller_key=keys[first],
            client=client,
            sandbox_url=sandbox_url,
            sandbox_app=simulator.app,
            contract=check,
            caller_keys=keys,
        )
    if contract is None:
        check.assert_clean()


class StartGateway(Protocol):
    """The `start_gateway` fixture: `sandbox_gateway`'s arguments, the gateway stopped (and the
    contract check asserted) when the test ends."""

    async def __call__(
        self,
        backend: str,
        *,
        plugins: Iterable[object] = (),
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        tenant_config: TenantTable | None = None,
        tenants: Mapping[str, TenantTable | None] | None = None,
        sandbox_app: web.Application | None = None,
    ) -> SandboxGateway: ...
