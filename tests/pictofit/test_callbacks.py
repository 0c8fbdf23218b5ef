"""PICTOFiT callbacks: registration with the service, and deliveries turned into events. These
test the core through that backend: its callback registrar (per tenant and per shared account,
retried in the background), its callback intake and the events it stores."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.plugin_api import Secret
from gateway.state import CALLBACKS, STORE
from gateway.testing import assert_conforms
from gateway_pictofit.callbacks import account_of
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.sandbox import CALLBACK_TYPES
from tests import raw_http
from tests.conftest import CALLER_KEY_A, CALLER_KEY_B
from tests.pictofit.conftest import (
    CALLBACK_SECRET,
    CUSTOMER,
    PICTOFIT_KEY_A,
    PICTOFIT_KEY_B,
    MakePictofit,
    Pictofit,
    shared_secret_b,
    tenant_a_config,
    tenant_b_config,
    wait_for,
    wait_for_events,
)


async def _shared(make_pictofit: MakePictofit) -> Pictofit:
    """Tenants A and B on the sandbox's one customer, both with the same callback secret, once
    the customer's registration is synced for both."""
    gateway = await make_pictofit(tenant_b=shared_secret_b)
    await wait_for(lambda: gateway.client.app[CALLBACKS].states[("tenant-b", "pictofit")].state)
    return gateway


async def _trigger(gateway: Pictofit, callback_type: str, object_id: str) -> int:
    """The service's test trigger for `object_id`: the status the gateway answered it."""
    trigger = f"/customers/{CUSTOMER}/callbacks/{callback_type}/trigger/{object_id}"
    response = await gateway.client.session.post(
        gateway.sandbox_url + trigger, headers={"Authorization": f"Bearer {PICTOFIT_KEY_A}"}
    )
    sent = (await response.json())["sent"]
    assert sent is not None, "nothing is registered for this type"
    status: int = sent["status"]
    return status


def _callback_path(tenant: str, callback_type: str, object_id: str) -> str:
    return f"/callbacks/pictofit/{tenant}/{callback_type}/{object_id}"


async def _stored_events(gateway: Pictofit, tenant: str) -> list[Any]:
    page = await gateway.client.app[STORE].list_events(
        tenant, event_type=None, after=None, limit=50
    )
    return list(page.items)


def test_tenants_share_a_registration_only_on_the_same_customer_and_origin() -> None:
    """The account is the service's origin and the customer (as PICTOFiT keys registrations):
    another customer or another host registers apart, as before; the API version path and the
    UUID's case do not matter; a tenant without a callback secret registers alone."""
    secret = Secret("env:TEST_PICTOFIT_CALLBACK_SECRET")

    def account(
        customer: str = CUSTOMER, base_url: str = "https://api.cs.pictofit.com/v1.5"
    ) -> Any:
        config = PictofitConfig(customer, base_url, Secret("env:K"), callback_secret=secret)
        return account_of(config)

    same = account()
    assert same == account(CUSTOMER.upper(), "https://API.cs.pictofit.com/v1.6/")
    assert account(str(uuid.uuid4())) != same
    assert account(base_url="https://staging.cs.pictofit.com/v1.5") != same
    assert CUSTOMER in same
    assert "secret" not in same
    alone = PictofitConfig(CUSTOMER, api_key=Secret("env:K"))
    assert account_of(alone) is None


async def test_every_listed_type_is_registered_with_the_tenants_secret(
    pictofit: Pictofit,
) -> None:
    """At start-up each callback type the service lists points at the tenant's callback URL."""
    registered = {name: reg for (_, name), reg in pictofit.sandbox.callbacks.items()}
    assert set(registered) == set(CALLBACK_TYPES.values())
    for name, registration in registered.items():
        assert registration.url == f"{pictofit.public_url}/callbacks/pictofit/tenant-a/{name}/"
        assert registration.authorization_header_value == CALLBACK_SECRET
    readiness = await pictofit.client.get("/readyz")
    checks = (await readiness.json())["checks"]
    assert checks["callbacks:pictofit"]["detail"].startswith("1 of 2 tenants synced")


async def test_registration_is_idempotent(pictofit: Pictofit) -> None:
    """Registering again (as `gateway callbacks sync` does) leaves one registration per type."""
    before = dict(pictofit.sandbox.callbacks)
    states = await pictofit.client.app[CALLBACKS].sync_all()
    assert states[("tenant-a", "pictofit")].state == "synced"
    assert pictofit.sandbox.callbacks == before


async def test_without_a_secret_registration_fails_clearly(pictofit: Pictofit) -> None:
    """Tenant B has no callback_secret: counted as failed in /readyz (which names no tenant),
    shown to B in /v1/backends naming the setting; nothing was registered for it upstream."""
    readiness = await pictofit.client.get("/readyz")
    assert readiness.status == 503
    check = (await readiness.json())["checks"]["callbacks:pictofit"]
    assert check == {"ok": False, "detail": "1 of 2 tenants synced (1 failed, 0 pending)"}
    backends = await pictofit.call("GET", "/v1/backends", CALLER_KEY_B, 200)
    [entry] = [b for b in backends["items"] if b["name"] == "pictofit"]
    assert entry["health"]["callbacks"]["state"] == "failed"
    assert "callback_secret" in entry["health"]["callbacks"]["detail"]
    assert {r.url for r in pictofit.sandbox.callbacks.values()} == {
        f"{pictofit.public_url}/callbacks/pictofit/tenant-a/{name}/"
        for name in CALLBACK_TYPES.values()
    }


async def test_failed_registration_is_retried_in_the_background(
    make_pictofit: MakePictofit,
) -> None:
    """A service failing at start-up (three 503s: one sync's retries) shows `failed` in
    /v1/backends until a background retry registers every type."""
    gateway = await make_pictofit(faults={"fail_next": 3}, wait_synced=False)
    registrar = gateway.client.app[CALLBACKS]
    await wait_for(lambda: registrar.states[("tenant-a", "pictofit")].state, "failed")
    backends = await gateway.call("GET", "/v1/backends", expect=200)
    [entry] = [b for b in backends["items"] if b["name"] == "pictofit"]
    assert entry["health"]["callbacks"]["state"] == "failed"
    assert "503" in entry["health"]["callbacks"]["detail"]
    assert gateway.sandbox.callbacks == {}
    await wait_for(lambda: registrar.states[("tenant-a", "pictofit")].state, "synced", 4)
    assert len(gateway.sandbox.callbacks) == len(CALLBACK_TYPES)


async def test_forged_callbacks_get_401_and_store_nothing(pictofit: Pictofit) -> None:
    """A wrong, missing or other tenant's secret is 401; nothing is stored or fetched."""
    product_id = await pictofit.put_product()
    before = len(pictofit.sandbox.requests)
    path = _callback_path("tenant-a", "PRODUCT_COMPLETED", product_id)
    for headers in (
        {"Authorization": "guess"},
        {},
        {"Authorization": f"Bearer {CALLBACK_SECRET}"},
        {"Authorization": PICTOFIT_KEY_A},
    ):
        response = await pictofit.client.post(path, headers=headers)
        assert response.status == 401, headers
        assert response.content_type == "application/problem+json"
    for tenant in ("tenant-b", "nobody"):
        other = _callback_path(tenant, "PRODUCT_COMPLETED", product_id)
        response = await pictofit.client.post(other, headers={"Authorization": CALLBACK_SECRET})
        assert response.status == 401, tenant
    assert len(pictofit.sandbox.requests) == before
    assert await _stored_events(pictofit, "tenant-a") == []
    assert await _stored_events(pictofit, "tenant-b") == []


async def test_a_secret_with_bytes_that_are_not_utf8_is_401(pictofit: Pictofit) -> None:
    """The secret is compared as the bytes sent: `\\xff` or Latin-1 in Authorization is a 401,
    not a 500; nothing is stored or fetched."""
    product_id = await pictofit.put_product()
    before = len(pictofit.sandbox.requests)
    path = _callback_path("tenant-a", "PRODUCT_COMPLETED", product_id)
    server = pictofit.client.server
    for value in (b"\xff", CALLBACK_SECRET.encode() + b"\xff", b"caf\xe9", b"\x80" + b"a" * 40):
        request = raw_http.head("POST", path, {"Authorization": value}, body_length=0)
        answer = await raw_http.exchange(server.host, server.port, request)
        assert answer.status == 401, (value, answer.body)
        assert answer.media_type == "application/problem+json"
    assert len(pictofit.sandbox.requests) == before
    assert await _stored_events(pictofit, "tenant-a") == []


async def test_duplicate_callback_is_stored_once(pictofit: Pictofit) -> None:
    """The same callback twice: both answered 204, one event."""
    product_id = await pictofit.put_product()
    await pictofit.put_configuration(product_id)
    path = _callback_path("tenant-a", "PRODUCT_REJECTED", product_id)
    for _ in range(2):
        response = await pictofit.client.post(path, headers={"Authorization": CALLBACK_SECRET})
        assert response.status == 204
    [event] = await pictofit.events()
    assert event["type"] == "product.rejected"
    assert_conforms("ProductEventData", event["data"])
    [configuration] = event["data"]["configurations"]
    assert configuration["state"] == "draft"
    assert configuration["results"] == []


async def test_other_callback_types_become_raw_events(pictofit: Pictofit) -> None:
    """A type with no unified name is forwarded as `pictofit.<type in lower case>`."""
    product_id = await pictofit.put_product()
    path = _callback_path("tenant-a", "PRODUCT_UPDATED", product_id)
    response = await pictofit.client.post(path, headers={"Authorization": CALLBACK_SECRET})
    assert response.status == 204
    elsewhere = _callback_path("tenant-a", "CUSTOMER_NOTICE", "n-42")
    response = await pictofit.client.post(elsewhere, headers={"Authorization": CALLBACK_SECRET})
    assert response.status == 204
    events = {e["type"]: e["data"] for e in await wait_for_events(pictofit, 2)}
    assert events["pictofit.product_updated"] == {
        "callbackType": "PRODUCT_UPDATED",
        "objectId": product_id,
        "productId": product_id,
        "configurations": [],
    }
    assert events["pictofit.customer_notice"] == {
        "callbackType": "CUSTOMER_NOTICE",
        "objectId": "n-42",
    }


async def test_product_callback_for_a_product_no_tenant_of_the_customer_has_is_404(
    make_pictofit: MakePictofit,
) -> None:
    """On a customer tenants A and B share, a completion for a product neither created through
    the gateway (a test trigger, a product made elsewhere) is 404 and nobody's event; one for
    B's product arriving at A's URL (the customer's one registration) is B's event, not A's."""
    gateway = await _shared(make_pictofit)
    response = await gateway.client.post(
        _callback_path("tenant-a", "PRODUCT_COMPLETED", str(uuid.uuid4())),
        headers={"Authorization": CALLBACK_SECRET},
    )
    assert response.status == 404
    product_b = await gateway.put_product(key=CALLER_KEY_B)
    response = await gateway.client.post(
        _callback_path("tenant-a", "PRODUCT_COMPLETED", product_b),
        headers={"Authorization": CALLBACK_SECRET},
    )
    assert response.status == 204
    [event] = await gateway.events(CALLER_KEY_B)
    assert (event["type"], event["tenant"]) == ("product.completed", "tenant-b")
    assert event["data"]["productId"] == product_b
    assert await _stored_events(gateway, "tenant-a") == []


async def test_tenants_sharing_a_customer_each_get_their_own_products_callbacks(
    make_pictofit: MakePictofit,
) -> None:
    """PICTOFiT keeps one registration per customer and type: tenants A and B sharing the
    customer are registered once (A's URL, the shared secret), and the service's callbacks for
    each tenant's product become that tenant's event only, B's product read with B's key."""
    gateway = await _shared(make_pictofit)
    registered = {name: reg for (_, name), reg in gateway.sandbox.callbacks.items()}
    assert set(registered) == set(CALLBACK_TYPES.values())
    for name, registration in registered.items():
        assert registration.url == f"{gateway.public_url}/callbacks/pictofit/tenant-a/{name}/"
        assert registration.authorization_header_value == CALLBACK_SECRET
    backends = await gateway.call("GET", "/v1/backends", CALLER_KEY_B, 200)
    [entry] = [b for b in backends["items"] if b["name"] == "pictofit"]
    assert entry["health"]["callbacks"]["state"] == "synced"

    product_a = await gateway.put_product()
    product_b = await gateway.put_product(key=CALLER_KEY_B)
    await gateway.put_configuration(product_b, key=CALLER_KEY_B)
    before = len(gateway.sandbox.requests)
    assert await _trigger(gateway, "PRODUCT_COMPLETED", product_a) == 204
    assert await _trigger(gateway, "PRODUCT_REJECTED", product_b) == 204
    [event_a] = await gateway.events()
    [event_b] = await gateway.events(CALLER_KEY_B)
    assert (event_a["type"], event_a["data"]["productId"]) == ("product.completed", product_a)
    assert (event_b["type"], event_b["data"]["productId"]) == ("product.rejected", product_b)
    assert len(event_b["data"]["configurations"]) == 1
    reads = {r.path: r.headers["Authorization"] for r in gateway.sandbox.requests[before:]}
    assert reads[f"/products/{product_b}/configurations"] == f"Bearer {PICTOFIT_KEY_B}"
    assert reads[f"/products/{product_a}/configurations"] == f"Bearer {PICTOFIT_KEY_A}"


async def test_a_customer_notice_reaches_every_tenant_of_the_customer(
    make_pictofit: MakePictofit,
) -> None:
    """A callback about no tenant's product (CUSTOMER_NOTICE) concerns the customer: each tenant
    sharing it gets the raw event, once however often it is delivered."""
    gateway = await _shared(make_pictofit)
    path = _callback_path("tenant-a", "CUSTOMER_NOTICE", "n-42")
    for _ in range(2):
        response = await gateway.client.post(path, headers={"Authorization": CALLBACK_SECRET})
        assert response.status == 204
    for key in (CALLER_KEY_A, CALLER_KEY_B):
        [event] = await gateway.events(key)
        assert event["type"] == "pictofit.customer_notice"
        assert event["data"] == {"callbackType": "CUSTOMER_NOTICE", "objectId": "n-42"}


async def test_tenants_sharing_a_customer_with_different_secrets_register_nothing(
    make_pictofit: MakePictofit,
) -> None:
    """The customer's one registration carries one secret: if A's and B's differ, nothing is
    registered, both show a failure naming the setting, and a callback with A's secret for B's
    product is 401 storing nothing (an event needs its tenant's own secret)."""

    def other_secret(url: str) -> dict[str, Any]:
        return {
            **tenant_b_config(url),
            "callback_secret": "env:TEST_PICTOFIT_OTHER_CALLBACK_SECRET",
        }

    gateway = await make_pictofit(tenant_b=other_secret, wait_synced=False)
    registrar = gateway.client.app[CALLBACKS]
    both = [("tenant-a", "pictofit"), ("tenant-b", "pictofit")]
    await wait_for(lambda: {registrar.states[pair].state for pair in both}, {"failed"})
    for pair in both:
        detail = registrar.states[pair].detail
        assert "callback_secret differ" in str(detail)
    assert gateway.sandbox.callbacks == {}
    product_b = await gateway.put_product(key=CALLER_KEY_B)
    response = await gateway.client.post(
        _callback_path("tenant-a", "PRODUCT_COMPLETED", product_b),
        headers={"Authorization": CALLBACK_SECRET},
    )
    assert response.status == 401
    assert await _stored_events(gateway, "tenant-a") == []
    assert await _stored_events(gateway, "tenant-b") == []


async def test_malformed_callback_path_is_400(pictofit: Pictofit) -> None:
    """An authenticated callback without an object id is a clear 400."""
    path = "/callbacks/pictofit/tenant-a/PRODUCT_COMPLETED/"
    response = await pictofit.client.post(path, headers={"Authorization": CALLBACK_SECRET})
    assert response.status == 400
    assert (await response.json())["errors"][0]["location"] == "callbackPath"


async def test_the_sandbox_trigger_reaches_the_gateway(pictofit: Pictofit) -> None:
    """The service's own test trigger is delivered and verified like a real callback."""
    product_id = await pictofit.put_product()
    trigger = f"/customers/{CUSTOMER}/callbacks/PRODUCT_REJECTED/trigger/{product_id}"
    response = await pictofit.client.session.post(
        pictofit.sandbox_url + trigger, headers={"Authorization": f"Bearer {PICTOFIT_KEY_A}"}
    )
    assert (await response.json())["sent"]["status"] == 204
    [event] = await pictofit.events()
    assert (event["type"], event["data"]["productId"]) == ("product.rejected", product_id)


async def test_tenant_without_secret_is_not_registered(make_pictofit: MakePictofit) -> None:
    """A tenant table without callback_secret registers nothing and its state says why."""

    def no_secret(url: str) -> dict[str, Any]:
        config = tenant_a_config(url)
        del config["callback_secret"]
        return config

    gateway = await make_pictofit(tenant_a=no_secret, wait_synced=False)
    registrar = gateway.client.app[CALLBACKS]
    await wait_for(lambda: registrar.states[("tenant-a", "pictofit")].state, "failed")
    assert gateway.sandbox.callbacks == {}
    assert not gateway.sandbox.requests
