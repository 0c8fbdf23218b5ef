"""The contract is valid OpenAPI 3.1, complete, and agrees with the routes both ways.

Checked as the tests' gateways serve it: the core contract with the installed backends' and
Acme's fragments merged in, so what a fragment brings is held to the same rules.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings, strategies as st
from openapi_spec_validator import validate

from gateway.contract import HTTP_METHODS, VALID_KEPT, Contract, Operation
from gateway.middleware import UNMATCHED
from gateway.plugin_api import hookimpl
from gateway.plugins import PluginError, PluginHost
from gateway.routes import route_table
from gateway.state import CONTRACT
from tests.acme_backend import AcmeBackend, AcmePlugin
from tests.conftest import Gateway, gateway_contract

# The core contract's operations (openapi/gateway.yaml); fragments add theirs.
CORE_OPERATION_IDS = {
    "listBackends",
    "listProductTypes",
    "listImageTypes",
    "putProduct",
    "getProduct",
    "putConfiguration",
    "listConfigurations",
    "uploadProductImage",
    "submitConfiguration",
    "downloadResult",
    "uploadUserPhoto",
    "listUserPhotos",
    "deleteUserPhoto",
    "mergeUser",
    "getPhotoSettings",
    "listEventTypes",
    "createSubscription",
    "listSubscriptions",
    "getSubscription",
    "updateSubscription",
    "deleteSubscription",
    "rotateSubscriptionSecret",
    "listSubscriptionDeliveries",
    "recoverSubscription",
    "getRecovery",
    "sendTestEvent",
    "listEvents",
    "getEvent",
    "listEventDeliveries",
    "redeliverEvent",
    "receiveBackendCallback",
    "getHealth",
    "getReadiness",
    "getMetrics",
    "getContractJson",
    "getContractYaml",
    "getDocs",
    "getDocsAsset",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The merged contract, as `GET /openapi.yaml` serves it."""
    loaded: dict[str, Any] = yaml.safe_load(gateway_contract().yaml_bytes)
    return loaded


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in document["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def test_contract_is_valid_openapi_31(document: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the contract as OpenAPI 3.1."""
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_contract_carries_every_operation_id(document: dict[str, Any]) -> None:
    """Every operationId client generators depend on is there, and no other: the core's and those
    the fragments brought (Acme's among them)."""
    brought = set(gateway_contract().origins)
    assert {"putAcmeWidget", "getAcmeWidget"} <= brought
    assert {op["operationId"] for _, _, op in operations(document)} == CORE_OPERATION_IDS | brought


def test_every_operation_is_well_formed(document: dict[str, Any]) -> None:
    """One tag each, numeric status codes, bodies as named schemas, errors as problem+json."""
    for path, method, op in operations(document):
        where = f"{method.upper()} {path}"
        assert len(op.get("tags", [])) == 1, where
        for code, response in op["responses"].items():
            assert code.isdigit(), f"{where}: {code}"
            if "$ref" in response:
                response = document["components"]["responses"][response["$ref"].split("/")[-1]]
            content = response.get("content", {})
            # /readyz answers its readiness report with 503, which is not an error document.
            if int(code) >= 400 and op["operationId"] != "getReadiness":
                assert list(content) == ["application/problem+json"], f"{where} {code}"
            for media in content.values():
                schema = media.get("schema", {})
                if schema.get("type") == "object" or "properties" in schema:
                    pytest.fail(f"{where} {code}: inline object schema")
        body = op.get("requestBody", {}).get("content", {})
        for media_type, media in body.items():
            if media_type in {"application/json"}:
                assert "$ref" in media["schema"], where


def test_every_owned_id_has_one_canonical_spelling() -> None:
    """Ownership is compared on ids the contract gives one spelling (a `format` the gateway
    canonicalises), so no other spelling of an id can reach another tenant's resource; and an
    upper-case UUID reads as its lower-case self."""
    for operation in gateway_contract().operations.values():
        for ref in operation.resources:
            (parameter,) = [p for p in operation.params_in("path") if p.name == ref.param]
            assert parameter.canonical is not None, f"{operation.operation_id}: {ref.param}"
    put = gateway_contract().operations["putProduct"]
    (product_id,) = put.params_in("path")
    spelt = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
    assert product_id.check(spelt) == (spelt.lower(), [])


def test_a_parameter_checked_again_gives_what_its_first_check_gave() -> None:
    """A parameter remembers the raw values it found valid (ids come back): checked again, each
    gives the value and canonical spelling its first check gave, an invalid one its errors
    every time, and what is remembered stays bounded."""
    put = gateway_contract().operations["putProduct"]
    (product_id,) = put.params_in("path")
    spelt = "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
    for _ in range(2):
        assert product_id.check(spelt) == (spelt.lower(), [])
        assert product_id.check("not-a-uuid")[1]
    for _ in range(VALID_KEPT + 1):
        assert product_id.check(str(uuid.uuid4()))[1] == []
    assert len(product_id._valid) <= VALID_KEPT
    assert product_id.check(spelt) == (spelt.lower(), [])


def test_product_and_configuration_ids_are_stated_as_version_4_uuids() -> None:
    """The contract states what the API accepts: a product or configuration id is a version 4
    UUID (`format: uuid` and a pattern generators and schemathesis see), in either case; any
    other UUID version or variant breaks the schema, so it is a 400 before any backend sees it."""
    operation = gateway_contract().operations["putConfiguration"]
    for parameter in operation.params_in("path"):
        assert parameter.schema["format"] == "uuid", parameter.name
        assert "pattern" in parameter.schema, parameter.name
        for accepted in (uuid.uuid4(), "3F2504E0-4F89-41D3-9A0C-0305E82C3301"):
            assert parameter.check(str(accepted))[1] == [], (parameter.name, accepted)
        refused = [uuid.uuid1(), uuid.uuid5(uuid.NAMESPACE_DNS, "x"), uuid.UUID(int=0)]
        refused.append(uuid.UUID("3f2504e0-4f89-41d3-ca0c-0305e82c3301"))  # not RFC 4122's variant
        for other in refused:
            assert parameter.check(str(other))[1], (parameter.name, other)


def test_every_integer_parameter_is_bounded() -> None:
    """An integer a caller sends in a path or query has a stated maximum, so no value reaches a
    backend or an answer that JSON encoders and upstream integer fields cannot hold (a `page` of
    41274942231316684800 was a 500 from `listUserPhotos`: orjson refuses integers past 64 bits)."""
    for operation in gateway_contract().operations.values():
        for where in ("path", "query"):
            for parameter in operation.params_in(where):
                if parameter.schema.get("type") == "integer":
                    assert "maximum" in parameter.schema, (operation.operation_id, parameter.name)


def test_v1_requires_the_caller_key_and_ops_routes_do_not(document: dict[str, Any]) -> None:
    """A bearer scheme covers /v1/**; health, metrics, contract and callbacks are public."""
    assert document["components"]["securitySchemes"]["callerKey"]["scheme"] == "bearer"
    for path, _, op in operations(document):
        public = op.get("security", document.get("security")) == []
        assert public == (not path.startswith("/v1/")), path


def test_every_contract_operation_has_a_handler_and_back() -> None:
    """The route table and the contract name the same operations."""
    assert set(route_table(gateway_contract())) == set(gateway_contract().operations)


def test_every_backend_operation_is_named_in_the_contract() -> None:
    """The installed backends (and Acme) serve exactly the operations the contract gives backends
    (`x-gateway-backend`): none they declare is missing from it, none of it is left unserved."""
    contract = gateway_contract()
    host = PluginHost.build(extra=[AcmePlugin()])
    served = set().union(*(b.capabilities for b in host.backends.values()))
    assert served == contract.backend_operations
    host.check_capabilities(contract.backend_operations)


def test_a_backend_declaring_an_operation_the_contract_lacks_fails_at_start() -> None:
    """A capability that is no backend operation of the contract stops the start-up."""

    class Greedy(AcmeBackend):
        name = "greedy"
        capabilities = frozenset({"putProduct", "listEvents"})

    class Plugin:
        @hookimpl
        def gateway_register_backends(self, register: Any) -> None:
            register(Greedy)

    host = PluginHost.build(extra=[Plugin()])
    with pytest.raises(PluginError, match="listEvents"):
        host.check_capabilities(gateway_contract().backend_operations)
    with pytest.raises(PluginError, match=r"backend greedy declares operations .*: listEvents"):
        host.contract()


async def test_app_routes_match_contract_paths(gateway: Gateway) -> None:
    """Every registered route is a contract path and method, and every contract path is routed:
    the app's contract is the merged one. (Besides them, the catch-all that answers 404 and 405
    problems.)"""
    contract = gateway.client.app[CONTRACT]
    assert contract is gateway_contract()
    expected = {(op.method, op.path) for op in contract.operations.values()}
    registered = {
        (route.method, route.resource.canonical)
        for route in gateway.client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None and route.name != UNMATCHED
    }
    assert registered == expected


async def test_contract_is_served_as_json_and_yaml(gateway: Gateway) -> None:
    """GET /openapi.json and /openapi.yaml serve the same document, without a caller key."""
    as_json = await gateway.client.get("/openapi.json")
    as_yaml = await gateway.client.get("/openapi.yaml")
    assert as_json.status == as_yaml.status == 200
    assert as_yaml.content_type == "application/yaml"
    assert await as_json.json() == yaml.safe_load(await as_yaml.text())


_SEGMENT_TEXT = st.text(st.sampled_from("ab9-_.~%2F{}é\n/"), max_size=6)


def _router(contract: Contract, paths: Callable[[Operation], str]) -> web.UrlDispatcher:
    app = web.Application()
    for op in contract.operations.values():
        app.router.add_route(op.method, paths(op), _no_handler, name=op.operation_id)
    return app.router


def _aiohttps_own_path(op: Operation) -> str:
    """The route path with aiohttp's own `[^{}/]+` for a parameter (`.+` for a greedy one)."""
    path = op.path
    for param in op.params_in("path"):
        if param.greedy:
            path = path.replace("{" + param.name + "}", "{" + param.name + ":.+}")
    return path


@attrs.frozen
class TwoRouters:
    contract: Contract
    ours: web.UrlDispatcher
    aiohttps: web.UrlDispatcher
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def two_routers() -> Iterator[TwoRouters]:
    contract, loop = gateway_contract(), asyncio.new_event_loop()
    ours = _router(contract, lambda op: op.route_path)
    yield TwoRouters(contract, ours, _router(contract, _aiohttps_own_path), loop)
    loop.close()


@settings(max_examples=300, deadline=None)
@given(
    operation_id=st.sampled_from(sorted(gateway_contract().operations)),  # built at collection
    values=st.lists(_SEGMENT_TEXT, min_size=3, max_size=3),
    tail=st.sampled_from(["", "/", "/x", "/configurations"]),
)
def test_route_paths_match_what_aiohttps_own_patterns_match(
    two_routers: TwoRouters,
    operation_id: str,
    values: list[str],
    tail: str,
) -> None:
    """A path parameter's pattern is possessive (a route that fails gives up at once), and routes
    exactly what aiohttp's default `[^{}/]+` would: a contract path, its parameters filled with
    any text (slashes, braces, encodings) and something appended, resolves to the same route
    with the same values."""
    op = two_routers.contract.operations[operation_id]
    path = op.path
    for param, value in zip(op.params_in("path"), values, strict=False):
        path = path.replace("{" + param.name + "}", value)
    request = make_mocked_request(op.method, path + tail)
    mine, theirs = (
        two_routers.loop.run_until_complete(router.resolve(request))
        for router in (two_routers.ours, two_routers.aiohttps)
    )
    assert (mine.route.name, dict(mine)) == (theirs.route.name, dict(theirs))


async def _no_handler(request: web.Request) -> web.StreamResponse:
    raise AssertionError("not called")
