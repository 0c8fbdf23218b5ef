"""A backend brings operations of its own in an OpenAPI fragment, merged into the served contract.

Acme's fragment (tests/acme_openapi.yaml) is served end to end by the tests' gateways. Another
test backend, Beta, brings fragments built in code: a valid one merges beside Acme's, and every
kind of clash or mistake stops the start-up with a message naming both sides.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from gateway.app import create_app
from gateway.cli import main
from gateway.config_loading import load_settings
from gateway.contract import default_contract
from gateway.fragments import merged_contract
from gateway.plugin_api import Backend, Reply, hookimpl
from gateway.plugins import PluginError, PluginHost
from gateway.state import CONTRACT
from gateway.testing import ContractCheck
from gateway_artifi.backend import ArtifiBackend
from gateway_pictofit.backend import PictofitBackend
from tests.acme_backend import AcmeBackend, AcmeConfig, AcmePlugin
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


# --- Beta: fragments built in code, valid and not ------------------------------------------


def beta_fragment() -> dict[str, Any]:
    """A valid fragment: a tag, a path, a parameter, a schema and a webhook of Beta's own."""
    gadget = {"$ref": "#/components/schemas/BetaGadget"}
    return {
        "tags": [{"name": "beta", "description": "Beta's gadgets."}],
        "paths": {
            "/v1/beta/gadgets/{gadgetId}": {
                "get": {
                    "operationId": "getBetaGadget",
                    "x-gateway-backend": True,
                    "tags": ["beta"],
                    "summary": "Get a Beta gadget",
                    "parameters": [
                        {"$ref": "#/components/parameters/RequestId"},
                        {"$ref": "#/components/parameters/BetaGadgetId"},
                    ],
                    "responses": {
                        "200": {
                            "description": "The gadget.",
                            "content": {"application/json": {"schema": gadget}},
                        },
                        "404": {"$ref": "#/components/responses/NotFound"},
                    },
                }
            }
        },
        "components": {
            "parameters": {
                "BetaGadgetId": {
                    "name": "gadgetId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "schemas": {"BetaGadget": {"type": "object", "properties": {"id": {"type": "string"}}}},
        },
        "webhooks": {
            "beta.ready": {
                "post": {
                    "operationId": "betaReadyWebhook",
                    "tags": ["beta"],
                    "requestBody": {"content": {"application/json": {"schema": gadget}}},
                    "responses": {"204": {"$ref": "#/components/responses/WebhookAccepted"}},
                }
            }
        },
    }


def beta_plugin(
    fragment: dict[str, Any] | None,
    *,
    capabilities: frozenset[str] = frozenset({"getBetaGadget"}),
    event_types: dict[str, str] | None = None,
    openapi: str | None = None,
) -> object:
    """A plugin registering Beta, which brings `fragment` (or reads `openapi` if it is None)."""

    class Beta(Backend[AcmeConfig]):
        name = "beta"
        version = "0.0.1"
        config_type = AcmeConfig

        @classmethod
        def openapi_fragment(cls) -> Any:
            return fragment if fragment is not None else super().openapi_fragment()

    Beta.capabilities = capabilities
    Beta.event_types = {"beta.*": "Beta's events."} if event_types is None else event_types
    Beta.openapi = openapi

    class Plugin:
        @hookimpl
        def gateway_register_backends(self, register: Callable[[type[Backend[Any]]], None]) -> None:
            register(Beta)

    return Plugin()


def gadget_op(fragment: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = fragment["paths"]["/v1/beta/gadgets/{gadgetId}"]["get"]
    return op


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


def _move_path(fragment: dict[str, Any], path: str) -> None:
    fragment["paths"] = {path: fragment["paths"].pop("/v1/beta/gadgets/{gadgetId}")}


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        node = fragment
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def _op(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        op = gadget_op(fragment)
        for key, value in changes.items():
            if value is None:
                del op[key]
            else:
                op[key] = value

    return change


def _ref(ref: str) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        gadget_op(fragment)["responses"]["200"]["content"]["application/json"]["schema"] = {
            "$ref": ref
        }

    return change


def _schema(name: str) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        fragment["components"]["schemas"][name] = {"type": "object"}

    return change


def _tag(name: str) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        fragment["tags"] = [{"name": name}]
        gadget_op(fragment)["tags"] = [name]
        fragment["webhooks"]["beta.ready"]["post"]["tags"] = [name]

    return change


def _webhook(event_type: str) -> Callable[[dict[str, Any]], None]:
    def change(fragment: dict[str, Any]) -> None:
        fragment["webhooks"] = {event_type: fragment["webhooks"].pop("beta.ready")}

    return change


CLASHES = [
    pytest.param(
        lambda f: _move_path(f, "/v1/products/{productId}"),
        ["path /v1/products/{productId} is already declared by the core contract"],
        id="path-of-the-core",
    ),
    pytest.param(
        lambda f: _move_path(f, "/v1/acme/widgets/{gadgetId}"),
        ["path /v1/acme/widgets/{gadgetId} is already declared by backend acme's fragment"],
        id="path-of-another-fragment",
    ),
    pytest.param(
        lambda f: _move_path(f, "/v1/products/gadgets"),
        [
            "GET /v1/products/gadgets matches requests that the core contract's"
            " GET /v1/products/{productId} (getProduct) matches too"
        ],
        id="path-shadowing-the-core",
    ),
    pytest.param(
        _op(operationId="getProduct"),
        [
            "operationId getProduct is already declared by the core contract"
            " (GET /v1/products/{productId})"
        ],
        id="operation-id-of-the-core",
    ),
    pytest.param(
        _op(operationId="getAcmeWidget"),
        [
            "operationId getAcmeWidget is already declared by backend acme's fragment"
            " (GET /v1/acme/widgets/{widgetId})"
        ],
        id="operation-id-of-another-fragment",
    ),
    pytest.param(
        _set("webhooks", "beta.ready", "post", "operationId", value="testWebhook"),
        ["operationId testWebhook is already declared by the core contract (webhook gateway.test)"],
        id="webhook-operation-id-of-the-core",
    ),
    pytest.param(
        _schema("Product"),
        ["components.schemas.Product is already declared by the core contract"],
        id="schema-of-the-core",
    ),
    pytest.param(
        _schema("AcmeWidget"),
        ["components.schemas.AcmeWidget is already declared by backend acme's fragment"],
        id="schema-of-another-fragment",
    ),
    pytest.param(
        _set("components", "parameters", "RequestId", value={"name": "x", "in": "query"}),
        ["components.parameters.RequestId is already declared by the core contract"],
        id="parameter-of-the-core",
    ),
    pytest.param(
        _tag("acme"),
        ["tag 'acme' is already declared by backend acme's fragment"],
        id="tag-of-another-fragment",
    ),
    pytest.param(
        _op(tags=["products"]),
        [
            "GET /v1/beta/gadgets/{gadgetId}: tagged ['products'], not with one tag the fragment"
            " declares ('products' is declared by the core contract)"
        ],
        id="operation-under-a-core-tag",
    ),
    pytest.param(
        _webhook("product.completed"),
        ["webhook product.completed is already declared by the core contract"],
        id="webhook-of-the-core",
    ),
    pytest.param(
        _op(**{"x-gateway-backend": None}),
        ["GET /v1/beta/gadgets/{gadgetId}: not marked `x-gateway-backend: true`"],
        id="operation-not-for-backends",
    ),
    pytest.param(
        _ref("#/components/schemas/Nope"),
        ["$ref #/components/schemas/Nope is neither in the core contract nor in the fragment"],
        id="ref-to-nothing",
    ),
    pytest.param(
        _ref("#/components/schemas/AcmeWidget"),
        [
            "$ref #/components/schemas/AcmeWidget is neither in the core contract nor in the"
            " fragment (backend acme's fragment declares it)"
        ],
        id="ref-to-another-fragment",
    ),
    pytest.param(
        _ref("common.yaml#/Gadget"),
        ["$ref 'common.yaml#/Gadget' is not a reference to #/components/"],
        id="ref-to-another-file",
    ),
    pytest.param(
        lambda f: _move_path(f, "/beta/gadgets/{gadgetId}"),
        ["/beta/gadgets/{gadgetId}: a backend's paths are under /v1/"],
        id="path-outside-v1",
    ),
    pytest.param(
        _op(security=[]),
        ["GET /v1/beta/gadgets/{gadgetId}: sets `security`"],
        id="operation-without-the-caller-key",
    ),
    pytest.param(
        _set("components", "securitySchemes", value={"open": {"type": "http"}}),
        ["components.securitySchemes: a fragment adds schemas, parameters"],
        id="security-scheme",
    ),
    pytest.param(
        _set("servers", value=[{"url": "http://elsewhere"}]),
        ["'servers': a fragment holds tags, paths, components, webhooks only"],
        id="unknown-key",
    ),
    pytest.param(
        _set("components", "parameters", "BetaGadgetId", "schema", value={"pattern": "["}),
        ["GET /v1/beta/gadgets/{gadgetId}: ValidationError"],
        id="schema-that-does-not-compile",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CLASHES)
def test_a_clashing_or_wrong_fragment_stops_the_start_up(
    change: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    """Each clash with the core contract or Acme's fragment, and each mistake, is refused with
    a message naming Beta's fragment and the other side."""
    fragment = beta_fragment()
    change(fragment)
    host = PluginHost.build(extra=[AcmePlugin(), beta_plugin(fragment)])
    with pytest.raises(PluginError) as refused:
        host.contract()
    message = str(refused.value)
    assert "backend beta's fragment" in message
    for text in expected:
        assert text in message


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        pytest.param(
            beta_plugin(beta_fragment(), capabilities=frozenset()),
            "backend beta's fragment brings getBetaGadget, which backend beta does not serve",
            id="operation-its-backend-does-not-serve",
        ),
        pytest.param(
            beta_plugin(
                beta_fragment(), capabilities=frozenset({"getBetaGadget", "getAcmeWidget"})
            ),
            "backend beta declares getAcmeWidget, which backend acme's fragment brings",
            id="operation-of-another-backends-fragment",
        ),
        pytest.param(
            beta_plugin(beta_fragment(), event_types={"gamma.*": "not Beta's"}),
            "backend beta's fragment documents the webhook beta.ready, an event type backend"
            " beta does not emit",
            id="webhook-of-an-event-it-does-not-emit",
        ),
        pytest.param(
            beta_plugin(None, openapi="tests:no_such_fragment.yaml"),
            "backend beta: its OpenAPI fragment 'tests:no_such_fragment.yaml' cannot be read",
            id="fragment-that-cannot-be-read",
        ),
        pytest.param(
            beta_plugin(None, openapi="gateway_beta:openapi.yaml"),
            "backend beta: its OpenAPI fragment 'gateway_beta:openapi.yaml' cannot be read: No"
            " module named 'gateway_beta'",
            id="fragment-of-a-package-that-is-not-there",
        ),
        pytest.param(
            beta_plugin(None, openapi="acme_openapi.yaml"),
            "Beta.openapi is 'package:path/in/it.yaml'",
            id="fragment-named-without-its-package",
        ),
    ],
)
def test_what_a_fragment_brings_is_its_backends_alone(plugin: object, expected: str) -> None:
    """A fragment's operations are served by its backend and no other, its webhooks are events
    its backend emits, and a fragment that cannot be read stops the start-up too."""
    host = PluginHost.build(extra=[AcmePlugin(), plugin])
    with pytest.raises(PluginError, match="beta") as refused:
        host.contract()
    assert expected in str(refused.value)


def test_create_app_refuses_a_clash(tmp_path: Path, secrets_env: None) -> None:
    """The app is not built when a fragment clashes."""
    fragment = beta_fragment()
    _schema("AcmeWidget")(fragment)
    settings = load_settings(gateway_config(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(PluginError, match="AcmeWidget is already declared by backend acme's"):
        create_app(settings, extra_plugins=[AcmePlugin(), beta_plugin(fragment)])


def _bring(monkeypatch: pytest.MonkeyPatch, backend: type[Backend[Any]], fragment: Any) -> None:
    """An installed backend brings `fragment` (serving its operation, emitting its events)."""
    monkeypatch.setattr(backend, "openapi_fragment", classmethod(lambda cls: fragment))
    monkeypatch.setattr(backend, "capabilities", backend.capabilities | {"getBetaGadget"})
    monkeypatch.setattr(backend, "event_types", {**backend.event_types, "beta.ready": "ready"})


def test_gateway_check_refuses_a_clash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway check` merges the installed backends' fragments and reports a clash (exit 2)."""
    fragment = beta_fragment()
    _op(operationId="listProductTypes")(fragment)
    _bring(monkeypatch, PictofitBackend, fragment)
    config = tmp_path / "gateway.toml"
    config.write_text("")
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "backend pictofit's fragment" in err
    assert "operationId listProductTypes is already declared by the core contract" in err


def test_gateway_spec_prints_the_merged_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway spec` prints the core contract with the installed backends' fragments, as YAML
    or JSON; `--config` leaves out what the configuration blocks."""
    _bring(monkeypatch, ArtifiBackend, beta_fragment())
    assert main(["spec"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "/v1/beta/gadgets/{gadgetId}" in printed["paths"]
    assert "/v1/products/{productId}" in printed["paths"]
    assert main(["spec", "--format", "json"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == printed
    config = tmp_path / "gateway.toml"
    config.write_text('[plugins]\nblocked = ["artifi"]\n')
    assert main(["spec", "--config", str(config)]) == 0
    assert "/v1/beta/gadgets/{gadgetId}" not in yaml.safe_load(capsys.readouterr().out)["paths"]
