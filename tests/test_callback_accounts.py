"""Callback registration per account: tenants sharing one upstream account are registered once,
and each of the account's callbacks reaches only the tenant it is for.

Acme keeps one callback registration per account when its config names one (`AcmeConfig.account`,
`AcmeBackend.callback_account`): tenants A and B share the account `shared`, tenant C has its own
registration. A callback for the account names a widget; the tenant that created it through the
gateway is the one told.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.backend import CallbackRegistration
from gateway.callbacks import CallbackRegistrar
from gateway.config_loading import load_settings
from gateway.state import BACKENDS, CALLBACKS, STORE
from gateway.tenants import digest_key
from gateway.testing import ContractCheck, WebhookSubscriber, eventually, webhook_subscriber
from gateway.values import Secret
from tests.acme_backend import (
    ACME_STATE,
    AcmeBackend,
    AcmePlugin,
    AcmeUpstreamState,
    make_acme_upstream,
)

KEYS = {t: f"gwk_account-test-{t}-key" for t in ("a", "b", "c")}
ACME_KEY = "acme-shared-account-key"
SECRET = "acme-shared-account-secret"


@attrs.frozen
class Accounts:
    client: TestClient[Any, Any]
    server: TestServer

    @property
    def upstream(self) -> AcmeUpstreamState:
        return self.server.app[ACME_STATE]

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()

    @property
    def registrar(self) -> CallbackRegistrar:
        return self.client.app[CALLBACKS]

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEYS[tenant]}"}

    async def put_widget(self, tenant: str) -> str:
        widget_id = str(uuid.uuid4())
        response = await self.client.put(
            f"/v1/acme/widgets/{widget_id}",
            json={"name": f"{tenant}'s", "sizeMm": 10},
            headers=self.auth(tenant),
        )
        assert response.status == 201, await response.text()
        return widget_id

    async def callback(self, url_tenant: str, widget_id: str) -> int:
        response = await self.client.post(
            f"/callbacks/acme/{url_tenant}/done/",
            data=json.dumps({"widgetId": widget_id}),
            headers={"Authorization": SECRET},
        )
        return response.status

    async def subscribe(self, tenant: str, subscriber: WebhookSubscriber) -> None:
        response = await self.client.post(
            "/v1/subscriptions",
            json={"url": subscriber.url, "eventTypes": ["acme.done"]},
            headers=self.auth(tenant),
        )
        assert response.status == 201, await response.text()
        subscriber.secrets.append((await response.json())["secret"])

    async def events(self, tenant: str) -> list[Any]:
        page = await self.client.app[STORE].list_events(
            f"tenant-{tenant}", event_type="acme.done", after=None, limit=10
        )
        return [e.data for e in page.items]


def tenant(name: str, acme_url: str, **acme: Any) -> dict[str, Any]:
    backend = {
        "base_url": acme_url,
        "api_key": Secret.literal(acme.pop("api_key", ACME_KEY)),
        "callback_secret": Secret.literal(SECRET),
        **acme,
    }
    return {"id": f"tenant-{name}", "keys": [digest_key(KEYS[name])], "backends": {"acme": backend}}


async def start(tmp_path: Path, check: ContractCheck, *, shared_key: str = ACME_KEY) -> Accounts:
    """Tenants A and B on the Acme account `shared` (with `shared_key`), C on its own; one Acme
    simulator; start-up registration settled."""
    upstream = TestServer(make_acme_upstream(ACME_KEY))
    await upstream.start_server()
    url = str(upstream.make_url("")).rstrip("/")
    settings = load_settings(
        {
            "store": {"url": f"sqlite:///{tmp_path}/gateway.db"},
            "server": {"public_url": "http://gateway.test"},
            "upstream": {"max_attempts": 1, "backoff_base": 0.001, "backoff_cap": 0.01},
            "events": {"allowed_targets": ["127.0.0.1/32"]},
            "tenants": [
                tenant("a", url, account="shared", api_key=shared_key),
                tenant("b", url, account="shared", api_key=shared_key),
                tenant("c", url),
            ],
        }
    )
    app = check.install(create_app(settings, extra_plugins=[AcmePlugin()]))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    registrar = client.app[CALLBACKS]
    await eventually(lambda: all(s.state != "pending" for s in registrar.states.values()))
    return Accounts(client, upstream)


@pytest.fixture
async def accounts(tmp_path: Path, contract_check: ContractCheck) -> AsyncIterator[Accounts]:
    started = await start(tmp_path, contract_check)
    yield started
    await started.close()


def registrations(upstream: AcmeUpstreamState) -> list[str]:
    return [r["headers"]["Authorization"] for r in upstream.requests if r["path"] == "/callbacks"]


async def test_tenants_sharing_an_account_are_registered_once(accounts: Accounts) -> None:
    """A and B share an account: one registration is made for both, at A's URL (the first
    tenant's), naming both; C, on its own, gets its own. Three tenants, two registrations."""
    assert len(registrations(accounts.upstream)) == 2
    assert sorted(accounts.upstream.callbacks) == [
        "http://gateway.test/callbacks/acme/tenant-a/done/",
        "http://gateway.test/callbacks/acme/tenant-c/done/",
    ]
    shared, own = accounts.registrar.registrations
    assert (shared.account, shared.tenants) == ("shared", ("tenant-a", "tenant-b"))
    assert (own.account, own.tenants) == (None, ("tenant-c",))
    # `gateway callbacks sync` registers per account too, the backend told every tenant.
    acme = accounts.client.app[BACKENDS]["acme"]
    seen: list[CallbackRegistration[Any]] = []

    async def register(registration: CallbackRegistration[Any]) -> None:
        seen.append(registration)
        await AcmeBackend.register_callbacks(acme, registration)

    acme.register_callbacks = register  # type: ignore[method-assign]
    await accounts.registrar.sync_all()
    assert len(registrations(accounts.upstream)) == 4
    assert [(r.tenant, r.account, r.tenants) for r in seen] == [
        ("tenant-a", "shared", ("tenant-a", "tenant-b")),
        ("tenant-c", None, ("tenant-c",)),
    ]
    assert seen[0].callback_url == "http://gateway.test/callbacks/acme/tenant-a/"


async def test_an_account_callback_reaches_only_its_owning_tenant(accounts: Accounts) -> None:
    """Callbacks for the shared account all arrive at A's URL; each names a widget, and only the
    tenant that created it gets the event (at its subscriber, nothing at the other's). A widget
    of another account (C's) or none is a 404 that tells no tenant."""
    async with webhook_subscriber() as to_a, webhook_subscriber() as to_b:
        await accounts.subscribe("a", to_a)
        await accounts.subscribe("b", to_b)
        widget_a = await accounts.put_widget("a")
        widget_b = await accounts.put_widget("b")
        widget_c = await accounts.put_widget("c")

        assert await accounts.callback("tenant-a", widget_b) == 204
        [event] = await to_b.wait_for("acme.done")
        assert (event["tenant"], event["data"]["widgetId"]) == ("tenant-b", widget_b)
        assert await accounts.callback("tenant-a", widget_a) == 204
        [event] = await to_a.wait_for("acme.done")
        assert (event["tenant"], event["data"]["widgetId"]) == ("tenant-a", widget_a)
        # B's URL (if the account was ever registered there) routes the same way.
        assert await accounts.callback("tenant-b", widget_a) == 204

        assert await accounts.callback("tenant-a", widget_c) == 404
        assert await accounts.callback("tenant-a", str(uuid.uuid4())) == 404
        assert await accounts.events("a") == [{"path": "done/", "widgetId": widget_a}]
        assert await accounts.events("b") == [{"path": "done/", "widgetId": widget_b}]
        assert await accounts.events("c") == []
        assert len(to_a.events()) == 1
        assert len(to_b.events()) == 1


async def test_per_tenant_callback_status_holds_for_a_shared_account(accounts: Accounts) -> None:
    """/v1/backends shows each tenant its registration's state (A and B both synced by the one
    registration), and /readyz counts tenants, not registrations."""
    for name in ("a", "b", "c"):
        listing = await accounts.client.get("/v1/backends", headers=accounts.auth(name))
        [acme] = [b for b in (await listing.json())["items"] if b["name"] == "acme"]
        assert acme["health"]["callbacks"] == {"state": "synced"}, name
    ready = await (await accounts.client.get("/readyz")).json()
    assert ready["checks"]["callbacks:acme"] == {"ok": True, "detail": "3 of 3 tenants synced"}


async def test_a_failed_account_registration_fails_each_of_its_tenants(
    tmp_path: Path, contract_check: ContractCheck
) -> None:
    """Acme refuses the shared account's key: its one failed registration is A's and B's state
    (with the reason), C's own registration stays synced, and /readyz counts two failed
    tenants."""
    accounts = await start(tmp_path, contract_check, shared_key="refused-acme-key")
    try:
        await check_failed_account(accounts)
    finally:
        await accounts.close()


async def check_failed_account(accounts: Accounts) -> None:
    for name, state in (("a", "failed"), ("b", "failed"), ("c", "synced")):
        listing = await accounts.client.get("/v1/backends", headers=accounts.auth(name))
        [acme] = [b for b in (await listing.json())["items"] if b["name"] == "acme"]
        assert acme["health"]["callbacks"]["state"] == state, name
        assert ("detail" in acme["health"]["callbacks"]) == (state == "failed"), name
    assert list(accounts.upstream.callbacks) == [
        "http://gateway.test/callbacks/acme/tenant-c/done/"
    ]
    ready = await accounts.client.get("/readyz")
    assert ready.status == 503
    check = (await ready.json())["checks"]["callbacks:acme"]
    assert check == {"ok": False, "detail": "1 of 3 tenants synced (2 failed, 0 pending)"}
