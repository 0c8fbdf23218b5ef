"""The backend authors' test kit (`gateway.testing`, re-exported by the plugin API, and its pytest
fixtures) on the Acme test backend: it starts what it says, and fails where a plugin's tests need
it to."""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from gateway.config_converter import ConfigError
from gateway.plugin_api import (
    Backend,
    ContractCheck,
    GatewayLogs,
    OperationCall,
    Reply,
    Sandbox,
    Secret,
    StartGateway,
    TenantTable,
    assert_conforms,
    hookimpl,
    sandbox_gateway,
    verify_webhook,
    webhook_subscriber,
)
from gateway.webhooks.signing import headers as signed_headers, new_secret
from tests.acme_backend import ACME_STATE, AcmeBackend, AcmePlugin, make_acme_upstream


async def test_sandbox_gateway_puts_a_backend_in_front_of_its_sandbox() -> None:
    """The backend's own sandbox is served and configured for the kit's tenant: the operation
    reaches it with the sandbox's upstream key, and each answer is counted by the check."""
    async with sandbox_gateway("acme", plugins=[AcmePlugin()]) as gateway:
        listed = await gateway.listing()
        assert listed["configured"] is True
        unauthenticated = await gateway.client.get("/v1/product-types")
        assert unauthenticated.status == 401
        response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
        assert response.status == 200
        assert await response.json() == {
            "backend": "acme",
            "items": [{"name": "SHIRT"}, {"name": "TROUSERS"}],
        }
        [seen] = [r for r in gateway.sandbox_app[ACME_STATE].requests if r["path"] == "/types"]
        assert seen["headers"]["Authorization"] == "Bearer sandbox-acme-key"
        assert gateway.url == f"http://127.0.0.1:{gateway.client.port}"
        assert gateway.contract.checked == 3


class DriftingBackend(AcmeBackend):
    """Acme under another name, answering product types the contract does not allow."""

    name = "drifting"

    async def operation(self, call: OperationCall[Any]) -> Reply | web.StreamResponse:
        return Reply(200, {"backend": self.name, "items": [{"title": "SHIRT"}]})


class DriftingPlugin:
    @hookimpl
    def gateway_register_backends(self, register: Callable[[type[Backend[Any]]], None]) -> None:
        register(DriftingBackend)

    @hookimpl
    def gateway_sandbox(self) -> Sandbox:
        return Sandbox(
            backend=DriftingBackend.name,
            make_app=lambda: make_acme_upstream("k"),
            tenant_config=lambda url: {"base_url": url, "api_key": Secret.literal("k")},
        )


async def test_a_drift_from_the_contract_fails_the_block() -> None:
    """An answer that breaks its schema fails the gateway's block when it ends, naming the
    request and the field; a check passed in records it for its owner instead."""
    block = sandbox_gateway("drifting", plugins=[DriftingPlugin()])
    gateway = await block.__aenter__()
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 200
    with pytest.raises(AssertionError, match=r"GET /v1/product-types: .*/items/0"):
        await block.__aexit__(None, None, None)
    check = ContractCheck()
    async with sandbox_gateway("drifting", plugins=[DriftingPlugin()], contract=check) as gateway:
        await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert len(check.violations) == 1


async def test_sandbox_gateway_names_what_it_cannot_start() -> None:
    """A backend nobody installed is named with the ones that are; the tenant is the kit's."""
    with pytest.raises(LookupError, match=r"'nope' \(installed: .*pictofit"):
        async with sandbox_gateway("nope"):
            pass
    with pytest.raises(ValueError, match="tenant_config"):
        async with sandbox_gateway("acme", plugins=[AcmePlugin()], settings={"tenants": {}}):
            pass


async def test_sandbox_gateway_configures_tenants_and_a_tuned_sandbox() -> None:
    """`tenants` gives each tenant a caller key and a table of its own (the first is the
    gateway's `tenant`; a table may be a function of the sandbox's URL); `sandbox_app` is served
    instead of the sandbox's own simulator."""
    app = make_acme_upstream("tuned-key")
    tenants: dict[str, TenantTable | None] = {
        "first": {"api_key": Secret.literal("tuned-key")},
        "second": lambda url: {"base_url": url + "/", "api_key": Secret.literal("wrong-key")},
    }
    async with sandbox_gateway(
        "acme", plugins=[AcmePlugin()], sandbox_app=app, tenants=tenants
    ) as gateway:
        assert gateway.sandbox_app is app
        assert (gateway.tenant, gateway.caller_key) == ("first", gateway.caller_keys["first"])
        assert gateway.caller_keys["first"] != gateway.caller_keys["second"]
        first = await gateway.client.get("/v1/product-types", headers=gateway.auth())
        assert first.status == 200
        second = await gateway.client.get("/v1/product-types", headers=gateway.auth("second"))
        assert second.status == 502
        seen = [r["headers"]["Authorization"] for r in app[ACME_STATE].requests]
        assert set(seen) == {"Bearer tuned-key", "Bearer wrong-key"}


async def test_a_table_key_set_to_none_is_left_out() -> None:
    """None drops a key the sandbox's table gives; a required one is then missing; a table given
    both ways is refused."""
    with pytest.raises(ConfigError, match=r"tenants\[0\]\.backends\.acme\.api_key"):
        async with sandbox_gateway("acme", plugins=[AcmePlugin()], tenant_config={"api_key": None}):
            pass
    with pytest.raises(ValueError, match="tenant_config alone"):
        async with sandbox_gateway("acme", tenant_config={}, tenants={"t": None}):
            pass


async def test_gateway_logs_and_assert_conforms(
    start_gateway: StartGateway, gateway_logs: GatewayLogs
) -> None:
    """`gateway_logs` holds the lines of this test alone, the upstream calls among them;
    `assert_conforms` holds a body to one of the contract's schemas and names what breaks it."""
    assert gateway_logs.all() == []
    gateway = await start_gateway("acme", plugins=[AcmePlugin()])
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    body = await response.json()
    [call] = gateway_logs.events("upstream.call")
    assert (call["backend"], call["status"]) == ("acme", 200)
    assert gateway.caller_key not in gateway_logs.text()
    assert_conforms("ProductTypeList", body)
    with pytest.raises(AssertionError, match="not a valid ProductTypeList"):
        assert_conforms("ProductTypeList", {"items": "none"})


async def test_webhook_subscriber_receives_and_verifies_real_deliveries() -> None:
    """A subscription made through the gateway gives the subscriber its secret; the gateway's
    test event arrives signed with it and is answered 204."""
    async with (
        sandbox_gateway("acme", plugins=[AcmePlugin()]) as gateway,
        webhook_subscriber() as subscriber,
    ):
        subscription = await gateway.subscribe(subscriber, ["gateway.test"])
        sent = await gateway.client.post(
            f"/v1/subscriptions/{subscription['id']}/test", headers=gateway.auth()
        )
        assert sent.status == 202
        [event] = await subscriber.wait_for("gateway.test")
        assert event["id"] == (await sent.json())["id"]
        [delivery] = subscriber.deliveries
        assert delivery.verified
        assert delivery.headers["webhook-id"] == event["id"]


async def test_webhook_subscriber_refuses_what_does_not_verify() -> None:
    """Another secret's signature, a changed body and a stale timestamp are each refused with a
    401 and fail the block; a rotation's two signatures verify with either secret."""
    secret, other = new_secret(), new_secret()
    body = b'{"id": "evt_1", "type": "x", "data": {}}'
    now = int(time.time())
    block = webhook_subscriber()
    subscriber = await block.__aenter__()
    subscriber.secrets.append(secret)
    attempts = [
        (signed_headers([other], "bad-1", now, body), body),
        (signed_headers([secret], "bad-2", now, body), body + b" "),
        (signed_headers([secret], "bad-3", now - 600, body), body),
        (signed_headers([other, secret], "good", now, body), body),
    ]
    statuses = []
    async with aiohttp.ClientSession() as session:
        for headers, sent in attempts:
            async with session.post(subscriber.url, data=sent, headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [401, 401, 401, 204]
    assert [d.verified for d in subscriber.deliveries] == [False, False, False, True]
    with pytest.raises(AssertionError, match=r"did not verify: \['bad-1', 'bad-2', 'bad-3'\]"):
        await block.__aexit__(None, None, None)


def test_verify_webhook_agrees_with_the_reference_library() -> None:
    """What the Standard Webhooks library signs verifies; any other secret does not."""
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    sent_at = datetime.datetime.now(tz=datetime.UTC)
    body = b'{"hello": "world"}'
    signature = Webhook(secret).sign("msg_1", sent_at, body.decode())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(sent_at.timestamp())),
        "Webhook-Signature": signature,
    }
    assert verify_webhook([secret], headers, body)
    assert not verify_webhook([new_secret()], headers, body)
    assert not verify_webhook([secret], headers, body, now=sent_at.timestamp() + 301)
