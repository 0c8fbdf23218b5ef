"""A backend brings operations of its own in an OpenAPI fragment, merged into the served contract.

Acme's fragment (tests/acme_openapi.yaml) is served end to end by the tests' gateways and merged
once per set of fragments; a valid fragment of another test backend, Beta, merges beside it.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.contract import default_contract
from gateway.fragments import merged_contract
from gateway.plugin_api import Reply
from gateway.plugins import PluginHost
from gateway.state import CONTRACT
from gateway.testing import ContractCheck
from tests.acme_backend import AcmeBackend, AcmePlugin
from tests.beta_backend import beta_fragment, beta_plugin
from tests.conftest import ACME_KEY_A, CALLER_KEY_B, Gateway, gateway_config

WIDGETS = "/v1/acme/widgets"


async def test_a_fragment_operation_is_validated_routed_and_served(gateway: Gateway) -> None:
    """putAcmeWidget and getAcmeWidget, which only Acme's fragment declares, are served like core
    operations: the caller key, the fragment's parameter and body schemas (400, 422, nothing sent
    upstream), per-tenant ownership of the id, the tenant's upstream key, and the event."""
    widget_id = str(uuid.uuid4())
    url = f"{WIDGETS}/{widget_id}"
    body = {"name": "Sprocket", "sizeMm": 12}
    assert (await gateway.client.get(url)).status == 401

    bad_id = await gateway.client.get(f"{WIDGETS}/not-a-uuid", headers=gateway.auth())
    assert bad_id.status == 400
    assert [e["location"] for e in (await bad_id.json())["errors"]] == ["widgetId"]
    bad_body = await gateway.client.put(
        url, json={"name": "", "sizeMm": 0, "colour": "red"}, headers=gateway.auth()
    )
    assert bad_body.status == 422
    locations = {e["location"] for e in (await bad_body.json())["errors"]}
    assert locations == {"/name", "/sizeMm", "/colour"}
    assert not [r for r in gateway.upstream.requests if r["path"].startswith("/widgets")]

    created = await gateway.client.put(url, json=body, headers=gateway.auth())
    assert created.status == 201, await created.text()
    assert await created.json() == {"id": widget_id, **body}
    replaced = await gateway.client.put(url, json=body, headers=gateway.auth())
    assert replaced.status == 200
    # Another spelling of the UUID is the same widget (the fragment's `format: uuid`).
    got = await gateway.client.get(f"{WIDGETS}/{widget_id.upper()}", headers=gateway.auth())
    assert got.status == 200
    assert await got.json() == {"id": widget_id, **body}
    [*_, last] = [r for r in gateway.upstream.requests if r["path"] == f"/widgets/{widget_id}"]
    assert last["headers"]["Authorization"] == f"Bearer {ACME_KEY_A}"
    # Tenant B cannot see tenant A's widget: the core's ownership check, from the fragment.
    other = await gateway.client.get(url, headers=gateway.auth(CALLER_KEY_B))
    assert other.status == 404

    # The event it emitted is what the fragment's webhook documents.
    listed = await gateway.client.get(
        "/v1/events", params={"type": "acme.widget_ready"}, headers=gateway.auth()
    )
    events = (await listed.json())["items"]
    assert [e["data"] for e in events] == [{"id": widget_id, **body}] * 2
    document = gateway.client.app[CONTRACT].document
    webhook = {"$ref": "#/components/schemas/AcmeWidgetReadyEvent"}
    validator = jsonschema_rs.validator_for({**webhook, "components": document["components"]})
    for event in events:
        assert validator.is_valid(event)
    assert not validator.is_valid({**events[0], "type": "acme.done"})


async def test_a_fragment_operations_answers_are_checked_against_the_fragment(
    gateway: Gateway, contract_check: ContractCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests' response check holds a fragment's operations to the fragment: an answer
    missing a required member of the fragment's schema is reported as drift."""

    async def drifting(self: AcmeBackend, call: Any) -> Reply:
        return Reply(200, {"id": str(call.path["widgetId"]), "name": "no size"})

    widget_id = str(uuid.uuid4())
    put = await gateway.client.put(
        f"{WIDGETS}/{widget_id}", json={"name": "W", "sizeMm": 1}, headers=gateway.auth()
    )
    assert put.status == 201
    assert contract_check.violations == []
    monkeypatch.setattr(AcmeBackend, "operation", drifting)
    response = await gateway.client.get(f"{WIDGETS}/{widget_id}", headers=gateway.auth())
    assert response.status == 200
    [violation] = contract_check.violations
    assert "getAcmeWidget 200" in violation
    assert "sizeMm" in violation
    contract_check.violations.clear()  # seen: the fixture's teardown would fail the test


async def test_a_fragment_is_in_the_served_contract_and_the_docs(gateway: Gateway) -> None:
    """/openapi.json, /openapi.yaml and /docs serve the merged contract: Acme's tag, paths,
    schemas and webhook beside the core's."""
    served = await (await gateway.client.get("/openapi.json")).json()
    as_yaml = yaml.safe_load(await (await gateway.client.get("/openapi.yaml")).text())
    assert served == as_yaml
    assert set(served["paths"][f"{WIDGETS}/{{widgetId}}"]) == {"get", "put"}
    assert {"AcmeWidget", "AcmeWidgetInput", "AcmeWidgetReadyEvent", "Product"} <= set(
        served["components"]["schemas"]
    )
    assert "acme" in [tag["name"] for tag in served["tags"]]
    assert "acme.widget_ready" in served["webhooks"]
    assert "/v1/products/{productId}" in served["paths"]

    page = await (await gateway.client.get("/docs")).text()
    for anchor in (
        'id="tag-acme"',
        'id="op-putAcmeWidget"',
        'id="op-getAcmeWidget"',
        'id="op-acmeWidgetReadyWebhook"',
        'id="schema-AcmeWidget"',
    ):
        assert anchor in page


def test_the_merged_contract_is_built_once_per_set_of_fragments(
    tmp_path: Path, secrets_env: None
) -> None:
    """Apps with the same backends share one merged contract; no fragments is the core contract
    itself; merging leaves the core contract as it was."""
    assert merged_contract({}) is default_contract()
    fragments = PluginHost.build(extra=[AcmePlugin()]).fragments()
    assert set(fragments) == {"acme"}
    assert merged_contract(fragments) is merged_contract(copy.deepcopy(fragments))
    settings = load_settings(gateway_config(tmp_path, "http://127.0.0.1:9"))
    first = create_app(settings, extra_plugins=[AcmePlugin()])
    second = create_app(settings, extra_plugins=[AcmePlugin()])
    assert first[CONTRACT] is second[CONTRACT] is merged_contract(fragments)
    bare = load_settings({"store": {"url": f"sqlite:///{tmp_path}/bare.db"}})
    assert create_app(bare)[CONTRACT] is default_contract()
    assert f"{WIDGETS}/{{widgetId}}" not in default_contract().document["paths"]
    assert "AcmeWidget" not in default_contract().document["components"]["schemas"]


def test_a_valid_fragment_merges_beside_another() -> None:
    """Beta's fragment and Acme's merge into one contract; each operation and webhook is known
    by the backend that brought it."""
    contract = PluginHost.build(extra=[AcmePlugin(), beta_plugin(beta_fragment())]).contract()
    assert contract.origins == {
        "putAcmeWidget": "acme",
        "getAcmeWidget": "acme",
        "getBetaGadget": "beta",
    }
    assert contract.webhook_origins == {"acme.widget_ready": "acme", "beta.ready": "beta"}
    assert contract.operations["getBetaGadget"].backend
    assert {"BetaGadget", "AcmeWidget"} <= set(contract.document["components"]["schemas"])
    assert [t["name"] for t in contract.document["tags"]][-2:] == ["acme", "beta"]
