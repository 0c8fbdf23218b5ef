"""A backend's OpenAPI fragment that clashes or is wrong stops the start-up.

Another test backend, Beta, brings fragments built in code: every kind of clash with the core
contract or Acme's fragment, and every mistake, is refused with a message naming both sides;
what a fragment brings is its own backend's alone; `gateway check` and `gateway spec` merge the
installed backends' fragments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import create_app
from gateway.cli import main
from gateway.config_loading import load_settings
from gateway.plugin_api import Backend
from gateway.plugins import PluginError, PluginHost
from gateway_artifi.backend import ArtifiBackend
from gateway_pictofit.backend import PictofitBackend
from tests.acme_backend import AcmePlugin
from tests.beta_backend import beta_fragment, beta_plugin
from tests.conftest import gateway_config


def gadget_op(fragment: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = fragment["paths"]["/v1/beta/gadgets/{gadgetId}"]["get"]
    return op


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
