"""The PICTOFiT sandbox simulator's front door: Bearer keys and OAuth2 tokens, the types endpoints
and routing, a mount under a prefix, and aiohttp's own refusals in its JSON error format."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from yarl import URL

from gateway_pictofit.sandbox import (
    SANDBOX_STATE,
    STATE_FINISHED,
    PictofitSandboxSettings,
    PictofitSandboxState,
    create_sandbox_app,
    sandbox_result_bytes,
)
from tests.sandboxes.pictofit_catalog import CUSTOMER, image_bytes, wait_for_state
from tests.sandboxes.pictofit_client import AUTH, KEY, Client, make_client

TOKEN_FORM = {
    "grant_type": "password",
    "username": "sandbox-user",
    "password": "sandbox-password",
    "client_id": "contentserviceapi.service.client",
    "client_secret": "sandbox-client-secret",
    "scope": "openid contentserviceapi",
}


# --- auth ---------------------------------------------------------------------------------------


async def test_missing_or_wrong_key_is_401_with_json_message(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """Calls without a Bearer key, or with an unknown one, get 401 JSON; the key is recorded."""
    client, state = sandbox
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
        response = await client.get("/products/types", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert isinstance((await response.json())["message"], str)
    assert (await client.get("/products/types", headers=AUTH)).status == 200
    seen = [r.headers.get("Authorization") for r in state.requests]
    assert seen == [None, "Bearer nope", KEY, f"Bearer {KEY}"]


@pytest.mark.parametrize("multipart", [False, True])
async def test_token_grant_issues_an_accepted_bearer_token(
    sandbox: tuple[Client, PictofitSandboxState], multipart: bool
) -> None:
    """connect/token (urlencoded or multipart) answers OAuth2 JSON whose token works as Bearer."""
    client, state = sandbox
    form = aiohttp.FormData(TOKEN_FORM, default_to_multipart=multipart)
    response = await client.post("/connect/token", data=form)
    assert response.status == 200
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] in state.tokens
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await client.get("/files/types", headers=headers)).status == 200


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("password", "wrong", "invalid_grant"),
        ("username", "nobody", "invalid_grant"),
        ("grant_type", "client_credentials", "invalid_grant"),
        ("client_secret", "wrong", "invalid_client"),
        ("client_id", "other", "invalid_client"),
        ("scope", "openid", "invalid_scope"),
    ],
)
async def test_token_grant_refuses_wrong_fields(
    sandbox: tuple[Client, PictofitSandboxState], field: str, value: str, error: str
) -> None:
    """Any wrong grant field gets 400 with the matching OAuth2 error code and no token."""
    client, state = sandbox
    response = await client.post("/connect/token", data={**TOKEN_FORM, field: value})
    assert response.status == 400
    assert await response.json() == {"error": error}
    assert state.tokens == {}


async def test_expired_token_is_refused(aiohttp_client: AiohttpClient) -> None:
    """A token past its lifetime gets 401, as does one expired by the test helper."""
    client, state = await make_client(aiohttp_client, token_lifetime_s=0)
    token = (await (await client.post("/connect/token", data=TOKEN_FORM)).json())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/products/types", headers=headers)).status == 401

    client, state = await make_client(aiohttp_client)
    token = (await (await client.post("/connect/token", data=TOKEN_FORM)).json())["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/products/types", headers=headers)).status == 200
    state.expire_token(token)
    assert (await client.get("/products/types", headers=headers)).status == 401


# --- types and routing --------------------------------------------------------------------------


async def test_types_endpoints(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """The three types endpoints list {id, name}, and the callback path works in any case."""
    client, _ = sandbox
    products = await (await client.get("/products/types", headers=AUTH)).json()
    assert {"id": 1, "name": "GARMENT_2D"} in products
    assert {p["name"] for p in products} == {"GARMENT_2D", "GARMENT_3D", "AVATAR_2D", "GARMENT"}
    files = await (await client.get("/files/types", headers=AUTH)).json()
    assert files == [{"id": 1, "name": "FRONTAL"}, {"id": 2, "name": "REFERENCE_ADDITIONAL"}]
    for path in (
        "/Customer/callbacks/types",
        "/customer/callbacks/types",
        "/customers/Callbacks/TYPES",
    ):
        response = await client.get(path, headers=AUTH)
        assert response.status == 200, path
        names = {c["name"] for c in await response.json()}
        assert names == {"PRODUCT_COMPLETED", "PRODUCT_REJECTED"}
    assert (await client.get("/Products/Types", headers=AUTH)).status == 200


async def test_unknown_route_is_404_json(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """Unknown paths answer 404 JSON and wrong methods 405 JSON."""
    client, _ = sandbox
    response = await client.get("/nothing/here", headers=AUTH)
    assert response.status == 404
    assert "message" in await response.json()
    response = await client.delete("/products/types", headers=AUTH)
    assert response.status == 405
    assert "message" in await response.json()


async def test_mounted_under_a_prefix(aiohttp_client: AiohttpClient) -> None:
    """Mounted as a sub-app at /v1.5, it serves there and result URLs carry the prefix."""
    sandbox_app = create_sandbox_app(PictofitSandboxSettings(processing_delay_s=0.01))
    root = web.Application()
    root.add_subapp("/v1.5", sandbox_app)
    client = await aiohttp_client(root)
    state = sandbox_app[SANDBOX_STATE]
    product_id = str(uuid.uuid4())
    body = {"customerId": CUSTOMER, "name": "Avatar", "typeId": 3}
    assert (await client.put(f"/v1.5/products/{product_id}", json=body, headers=AUTH)).status == 201
    configuration_id = str(uuid.uuid4())
    response = await client.put(
        f"/v1.5/configurations/{configuration_id}",
        json={"productId": product_id, "name": "Default"},
        headers=AUTH,
    )
    assert response.status == 201
    form = aiohttp.FormData()
    form.add_field("file", image_bytes("PNG"), filename="f.png", content_type="image/png")
    for key, value in (("id", str(uuid.uuid4())), ("name", "f"), ("typeId", "1")):
        form.add_field(key, value)
    form.add_field("configurationId", configuration_id)
    assert (await client.post("/v1.5/files", data=form, headers=AUTH)).status == 201
    await client.post(f"/v1.5/configurations/{configuration_id}/ready", headers=AUTH)
    await wait_for_state(state, configuration_id, {STATE_FINISHED})
    result = state.configurations[configuration_id].results[0]
    assert URL(result.url).path.startswith("/v1.5/_files/results/")
    assert result.file_name.endswith(".avatar")
    head = await client.session.head(result.url)
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(
        sandbox_result_bytes(configuration_id, result.format, result.compressed)
    )
    assert state.requests[0].path == f"/v1.5/products/{product_id}"


async def test_oversized_json_body_is_refused_as_json(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """aiohttp's own refusals (a body over 1 MB) are answered in the JSON error format too."""
    client, _ = sandbox
    response = await client.put(
        f"/products/{uuid.uuid4()}", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=AUTH
    )
    assert response.status == 413
    assert "message" in await response.json()
