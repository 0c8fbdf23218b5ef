"""The tenant table and the declaration: what operators may write, and what the plugin offers.
These test the core through that backend: its configuration loading (`structure_section`,
`ConfigError` naming the path) and its plugin host's declaration."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config_converter import ConfigError, structure_section
from gateway.plugin_api import Secret
from gateway.plugins import PluginHost
from gateway_pictofit.config import PictofitConfig
from tests.pictofit.conftest import CUSTOMER

WHERE = "tenants[0].backends.pictofit"


def structure(raw: dict[str, Any]) -> PictofitConfig:
    config: PictofitConfig = structure_section(raw, PictofitConfig, WHERE)
    return config


def problems(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        structure(raw)
    return caught.value.problems


def test_defaults_follow_the_reference() -> None:
    """Only the customer and a key are needed; the rest defaults to PICTOFIT.md's choices."""
    config = structure({"customer_id": CUSTOMER, "api_key": "env:X"})
    assert config.base_url == "https://api.cs.pictofit.com/v1.5"
    assert config.images.max_bytes == 20 * 1024 * 1024
    assert config.images.min_width == 1000
    assert dict(config.assumptions.states) == {
        1: "draft",
        2: "submitted",
        3: "processing",
        4: "finished",
        5: "rejected",
    }
    assert config.token is None
    assert config.callback_secret is None


def test_assumptions_are_overridable() -> None:
    """Every assumed choice can be changed from the tenant's table (TOML keys are strings)."""
    config = structure(
        {
            "customer_id": CUSTOMER,
            "base_url": "https://content-staging.pictofit.com/v1.5/",
            "token": {"username": "u", "password": "env:P", "client_secret": "env:S"},
            "assumptions": {
                "states": {"1": "draft", "7": "finished"},
                "callback_events": {"PRODUCT_DONE": "product.completed"},
                "callback_types_path": "/customers/callbacks/types",
            },
        }
    )
    assert config.base_url == "https://content-staging.pictofit.com/v1.5"
    assert config.assumptions.states == {1: "draft", 7: "finished"}
    assert config.assumptions.callback_events == {"PRODUCT_DONE": "product.completed"}
    assert config.token is not None
    assert config.token.url == "https://rrauth.pictofit.com/connect/token"


TOKEN = {"username": "u", "password": "env:P", "client_secret": "env:S"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"customer_id": CUSTOMER},
            f"{WHERE}: set exactly one of api_key and token",
        ),
        (
            {"customer_id": CUSTOMER, "api_key": "env:X", "token": TOKEN},
            f"{WHERE}: set exactly one of api_key and token",
        ),
        ({"customer_id": "acme", "api_key": "env:X"}, f"{WHERE}.customer_id: must be a UUID"),
        (
            {"customer_id": CUSTOMER, "api_key": "env:X", "base_url": "ftp://x"},
            f"{WHERE}.base_url: must be an absolute http(s) URL",
        ),
        ({"customer_id": CUSTOMER, "api_key": "plain-text"}, f"{WHERE}.api_key: "),
        (
            {"customer_id": CUSTOMER, "api_key": "env:X", "assumptions": {"states": {"1": "x"}}},
            f"{WHERE}.assumptions.states: ['x'] not among",
        ),
        ({"customer_id": CUSTOMER, "api_key": "env:X", "colour": "red"}, "colour"),
    ],
)
def test_mistakes_are_named_by_path(raw: dict[str, Any], expected: str) -> None:
    """Each mistake in the table is refused at start-up, at its path and with its reason."""
    found = problems(raw)
    assert any(expected in p for p in found), found


def test_declaration_serves_the_issue_operations_and_events() -> None:
    """The declaration lists the nine operations and the event types with descriptions."""
    host = PluginHost.build()
    declaration = host.backends["pictofit"]
    assert declaration.capabilities == {
        "listProductTypes",
        "listImageTypes",
        "putProduct",
        "getProduct",
        "putConfiguration",
        "listConfigurations",
        "uploadProductImage",
        "submitConfiguration",
        "downloadResult",
    }
    assert set(declaration.event_types) == {"product.completed", "product.rejected", "pictofit.*"}
    assert declaration.receives_callbacks()
    assert declaration.registers_callbacks()


def test_sandbox_tenant_has_a_callback_secret() -> None:
    """Sandbox mode's demo tenant can register and verify callbacks out of the box."""
    [sandbox] = [s for s in PluginHost.build().sandboxes() if s.backend == "pictofit"]
    raw = dict(sandbox.tenant_config("http://127.0.0.1:9"))
    assert isinstance(raw["callback_secret"], Secret)
    config = structure(raw)
    assert config.callback_secret is not None
    assert config.callback_secret.reveal()
