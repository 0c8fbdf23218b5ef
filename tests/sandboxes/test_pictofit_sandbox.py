"""Tests of the PICTOFiT Content Service sandbox simulator (gateway_pictofit.sandbox)."""

from __future__ import annotations

import asyncio
import functools
import io
import time
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from gateway_pictofit.sandbox import (
    SANDBOX_STATE,
    STATE_CREATED,
    STATE_FINISHED,
    STATE_IN_PROGRESS,
    STATE_READY,
    STATE_REJECTED,
    PictofitSandboxSettings,
    PictofitSandboxState,
    create_sandbox_app,
    sandbox_result_bytes,
)

Client = TestClient[web.Request, web.Application]

KEY = "sandbox-pictofit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CUSTOMER = PictofitSandboxSettings().customer_id
FRONTAL, REFERENCE = 1, 2
TOKEN_FORM = {
    "grant_type": "password",
    "username": "sandbox-user",
    "password": "sandbox-password",
    "client_id": "contentserviceapi.service.client",
    "client_secret": "sandbox-client-secret",
    "scope": "openid contentserviceapi",
}


@functools.cache
def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 800), (200, 30, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="GIF")
    return buffer.getvalue()


async def make_client(
    aiohttp_client: AiohttpClient, **settings: Any
) -> tuple[Client, PictofitSandboxState]:
    settings.setdefault("processing_delay_s", 0.05)
    app = create_sandbox_app(PictofitSandboxSettings(**settings))
    client = await aiohttp_client(app)
    return client, app[SANDBOX_STATE]


@pytest.fixture
async def sandbox(aiohttp_client: AiohttpClient) -> tuple[Client, PictofitSandboxState]:
    return await make_client(aiohttp_client)


async def put_product(client: Client, type_id: int = 1, product_id: str | None = None) -> str:
    product_id = product_id or str(uuid.uuid4())
    body = {"customerId": CUSTOMER, "name": "Shirt", "typeId": type_id, "sku": "sku-1"}
    response = await client.put(f"/products/{product_id}", json=body, headers=AUTH)
    assert response.status in (200, 201), await response.text()
    return product_id


async def put_configuration(client: Client, product_id: str) -> str:
    configuration_id = str(uuid.uuid4())
    body = {"productId": product_id, "name": "Default"}
    response = await client.put(f"/configurations/{configuration_id}", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    return configuration_id


async def upload(
    client: Client,
    configuration_id: str,
    data: bytes,
    content_type: str = "image/png",
    type_id: int = FRONTAL,
    file_id: str | None = None,
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="upload", content_type=content_type)
    form.add_field("id", file_id or str(uuid.uuid4()))
    form.add_field("name", "frontal_image")
    form.add_field("configurationId", configuration_id)
    form.add_field("typeId", str(type_id))
    return await client.post("/files", data=form, headers=AUTH)


async def wait_for_state(
    state: PictofitSandboxState, configuration_id: str, wanted: set[int]
) -> None:
    for _ in range(200):
        if state.configurations[configuration_id].state_id in wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"state never reached {wanted}")


async def wait_for_callbacks(state: PictofitSandboxState, count: int) -> None:
    for _ in range(200):
        if len(state.callbacks_sent) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("callback never sent")


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


# --- products and configurations ----------------------------------------------------------------


async def test_product_upsert_201_then_200(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """PUT /products/{id} creates (201) then replaces (200), keeping createdAt."""
    client, state = sandbox
    product_id = str(uuid.uuid4())
    body = {"customerId": CUSTOMER, "name": "Shirt", "typeId": 1, "sku": "s-1"}
    first = await client.put(f"/products/{product_id}", json=body, headers=AUTH)
    assert first.status == 201
    created = await first.json()
    assert created["id"] == product_id
    assert created["customerId"] == CUSTOMER
    assert isinstance(created["createdAt"], float)
    second = await client.put(
        f"/products/{product_id}", json={**body, "name": "Renamed", "sku": None}, headers=AUTH
    )
    assert second.status == 200
    replaced = await second.json()
    assert replaced["name"] == "Renamed"
    assert replaced["sku"] is None
    assert replaced["createdAt"] == created["createdAt"]
    assert replaced["modifiedAt"] >= created["modifiedAt"]
    assert len(state.products) == 1


@pytest.mark.parametrize(
    ("path_id", "changes", "field"),
    [
        ("not-a-uuid", {}, "id"),
        ("00000000-0000-1000-8000-000000000000", {}, "id"),  # version 1, not 4
        (None, {"customerId": str(uuid.uuid4())}, "customerId"),
        (None, {"typeId": 99}, "typeId"),
        (None, {"typeId": "1"}, "typeId"),
        (None, {"name": ""}, "name"),
        (None, {"sku": 5}, "sku"),
    ],
)
async def test_product_validation(
    sandbox: tuple[Client, PictofitSandboxState],
    path_id: str | None,
    changes: dict[str, Any],
    field: str,
) -> None:
    """Invalid products get 400 with the offending field named in errors, and are not stored."""
    client, state = sandbox
    body = {"customerId": CUSTOMER, "name": "Shirt", "typeId": 1, **changes}
    response = await client.put(f"/products/{path_id or uuid.uuid4()}", json=body, headers=AUTH)
    assert response.status == 400
    answer = await response.json()
    assert field in answer["errors"]
    assert answer["message"]
    assert state.products == {}


async def test_configuration_upsert_and_listing(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """PUT /configurations/{id} creates (201, stateId 1) then replaces (200); doc-shaped listing."""
    client, _ = sandbox
    product_id = await put_product(client)
    configuration_id = str(uuid.uuid4())
    body = {"productId": product_id, "name": "Default", "sku": "c-1"}
    first = await client.put(f"/configurations/{configuration_id}", json=body, headers=AUTH)
    assert first.status == 201
    assert (await first.json())["stateId"] == STATE_CREATED
    second = await client.put(
        f"/configurations/{configuration_id}", json={**body, "name": "Red"}, headers=AUTH
    )
    assert second.status == 200
    listing = await (
        await client.get(f"/products/{product_id}/configurations", headers=AUTH)
    ).json()
    assert len(listing) == 1
    entry = listing[0]
    assert set(entry) == {
        "productId", "name", "sku", "createdAt", "modifiedAt", "stateId", "productTypeId",
        "customerId", "url", "results", "metadata", "id",
    }  # fmt: skip
    assert entry["id"] == configuration_id
    assert entry["name"] == "Red"
    assert entry["productTypeId"] == 1
    assert entry["customerId"] == CUSTOMER
    assert entry["url"] is None
    assert entry["results"] == []
    assert entry["metadata"] == {}


async def test_configuration_of_unknown_product_is_refused(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """A configuration naming a missing product is 400; listing a missing product is 404."""
    client, state = sandbox
    missing = str(uuid.uuid4())
    response = await client.put(
        f"/configurations/{uuid.uuid4()}", json={"productId": missing, "name": "x"}, headers=AUTH
    )
    assert response.status == 400
    assert "productId" in (await response.json())["errors"]
    assert state.configurations == {}
    response = await client.get(f"/products/{missing}/configurations", headers=AUTH)
    assert response.status == 404


# --- files --------------------------------------------------------------------------------------


async def test_png_and_jpeg_uploads_are_accepted_and_idempotent(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """PNG and JPEG upload with 201; the same id again replaces the file with 200."""
    client, state = sandbox
    configuration_id = await put_configuration(client, await put_product(client))
    png = await upload(client, configuration_id, image_bytes("PNG"))
    assert png.status == 201
    file_id = str(uuid.uuid4())
    jpeg = await upload(
        client, configuration_id, image_bytes("JPEG"), "image/jpeg", file_id=file_id
    )
    assert jpeg.status == 201
    answer = await jpeg.json()
    assert answer == {
        "id": file_id,
        "name": "frontal_image",
        "configurationId": configuration_id,
        "typeId": FRONTAL,
        "contentType": "image/jpeg",
        "size": len(image_bytes("JPEG")),
    }
    again = await upload(
        client, configuration_id, image_bytes("PNG"), "image/png", REFERENCE, file_id
    )
    assert again.status == 200
    assert len(state.files) == 2
    assert state.files[file_id].content_type == "image/png"
    assert state.files[file_id].data == image_bytes("PNG")


async def test_upload_refusals(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """GIFs (415), mismatched magic bytes (400), unknown configuration or type (400) are refused."""
    client, state = sandbox
    configuration_id = await put_configuration(client, await put_product(client))
    assert (await upload(client, configuration_id, gif_bytes(), "image/gif")).status == 415
    mismatch = await upload(client, configuration_id, image_bytes("JPEG"), "image/png")
    assert mismatch.status == 400
    assert "file" in (await mismatch.json())["errors"]
    garbage = await upload(client, configuration_id, b"GIF89a-not-a-png", "image/png")
    assert garbage.status == 400
    unknown = await upload(client, str(uuid.uuid4()), image_bytes("PNG"))
    assert unknown.status == 400
    assert "configurationId" in (await unknown.json())["errors"]
    bad_type = await upload(client, configuration_id, image_bytes("PNG"), type_id=9)
    assert bad_type.status == 400
    assert "typeId" in (await bad_type.json())["errors"]
    not_multipart = await client.post("/files", json={}, headers=AUTH)
    assert not_multipart.status == 415
    assert state.files == {}


# --- processing ---------------------------------------------------------------------------------


async def test_ready_finishes_with_downloadable_deterministic_results(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """Ready goes 2 -> 3 -> 4; the four results download without auth, byte for byte."""
    client, state = sandbox
    product_id = await put_product(client)
    configuration_id = await put_configuration(client, product_id)
    assert (await upload(client, configuration_id, image_bytes("PNG"))).status == 201
    response = await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["stateId"] == STATE_IN_PROGRESS
    await wait_for_state(state, configuration_id, {STATE_FINISHED})
    steps = [t.state_id for t in state.transitions if t.configuration_id == configuration_id]
    assert steps == [STATE_CREATED, STATE_READY, STATE_IN_PROGRESS, STATE_FINISHED]

    listing = await (
        await client.get(f"/products/{product_id}/configurations", headers=AUTH)
    ).json()
    results = listing[0]["results"]
    assert listing[0]["stateId"] == STATE_FINISHED
    assert {(r["format"], r["compressed"]) for r in results} == {
        ("MOBILE", True), ("MOBILE", False), ("WEB", True), ("WEB", False),
    }  # fmt: skip
    for result in results:
        url = URL(result["url"])
        assert url.is_absolute()
        assert url.port == client.server.port
        assert result["fileName"].endswith(".garment")
        # Absolute URL, fetched without any Authorization header.
        async with client.session.get(url) as download:
            assert download.status == 200
            assert download.content_type == "application/octet-stream"
            body = await download.read()
        expected = sandbox_result_bytes(configuration_id, result["format"], result["compressed"])
        assert body == expected
        assert 64 * 1024 <= len(body) <= 256 * 1024
    compressed = sandbox_result_bytes(configuration_id, "WEB", True)
    assert len(compressed) < len(sandbox_result_bytes(configuration_id, "WEB", False))
    assert compressed == sandbox_result_bytes(configuration_id, "WEB", True)
    assert compressed != sandbox_result_bytes(str(uuid.uuid4()), "WEB", True)
    missing = await client.get("/_files/results/not-a-token")
    assert missing.status == 404


async def test_ready_without_frontal_is_rejected(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """A configuration with only a reference image ends rejected (5) without results."""
    client, state = sandbox
    product_id = await put_product(client)
    configuration_id = await put_configuration(client, product_id)
    await upload(client, configuration_id, image_bytes("PNG"), type_id=REFERENCE)
    await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    await wait_for_state(state, configuration_id, {STATE_REJECTED})
    listing = await (
        await client.get(f"/products/{product_id}/configurations", headers=AUTH)
    ).json()
    assert listing[0]["stateId"] == STATE_REJECTED
    assert listing[0]["results"] == []
    assert (await client.post(f"/configurations/{uuid.uuid4()}/ready", headers=AUTH)).status == 404


# --- callbacks ----------------------------------------------------------------------------------


async def start_receiver(
    aiohttp_server: AiohttpServer,
) -> tuple[str, list[tuple[str, str | None, bytes]]]:
    received: list[tuple[str, str | None, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.match_info["object_id"], request.headers.get("Authorization"),
             await request.read())
        )  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/{object_id}", hook)
    server = await aiohttp_server(app)
    return str(server.make_url("/hooks/")), received


async def test_callback_delivered_when_product_completes(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """PRODUCT_COMPLETED fires once every configuration is done, to url + product id, with auth."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    register = await client.put(
        f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED",
        json={"url": hook_url, "authorizationHeaderValue": "Secret s3cr3t"},
        headers=AUTH,
    )
    assert register.status == 200
    assert (await register.json())["registered"] is True
    product_id = await put_product(client)
    good = await put_configuration(client, product_id)
    bad = await put_configuration(client, product_id)
    await upload(client, good, image_bytes("JPEG"), "image/jpeg")
    await client.post(f"/configurations/{good}/ready", headers=AUTH)
    await wait_for_state(state, good, {STATE_FINISHED})
    assert state.callbacks_sent == []  # the other configuration was never flagged ready
    await client.post(f"/configurations/{bad}/ready", headers=AUTH)
    await wait_for_callbacks(state, 1)
    assert received == [(product_id, "Secret s3cr3t", b"")]
    sent = state.callbacks_sent[0]
    assert sent.callback_type == "PRODUCT_COMPLETED"
    assert sent.url == hook_url + product_id
    assert sent.status == 204
    assert sent.error is None


async def test_rejected_product_fires_product_rejected_without_auth_header(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """All configurations rejected fire PRODUCT_REJECTED; registered by numeric id, no auth."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    for type_id in (1, 2):
        response = await client.put(
            f"/customers/{CUSTOMER}/callbacks/{type_id}",
            json={"url": hook_url, "authorizationHeaderValue": ""},
            headers=AUTH,
        )
        assert response.status == 200
    product_id = await put_product(client)
    configuration_id = await put_configuration(client, product_id)
    await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    await wait_for_callbacks(state, 1)
    assert received == [(product_id, None, b"")]
    assert state.callbacks_sent[0].callback_type == "PRODUCT_REJECTED"
    assert state.callbacks_sent[0].authorization is None


async def test_callback_registration_rules(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """An empty url unregisters; another customer is 403; unknown types 404; bad urls 400."""
    client, state = sandbox
    path = f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED"
    body = {"url": "http://127.0.0.1:9/hooks/", "authorizationHeaderValue": "x"}
    assert (await client.put(path, json=body, headers=AUTH)).status == 200
    assert (CUSTOMER, "PRODUCT_COMPLETED") in state.callbacks
    response = await client.put(
        path, json={"url": "", "authorizationHeaderValue": ""}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["registered"] is False
    assert state.callbacks == {}
    other = f"/customers/{uuid.uuid4()}/callbacks/PRODUCT_COMPLETED"
    assert (await client.put(other, json=body, headers=AUTH)).status == 403
    unknown = f"/customers/{CUSTOMER}/callbacks/PRODUCT_EXPLODED"
    assert (await client.put(unknown, json=body, headers=AUTH)).status == 404
    assert (await client.put(path, json={"url": "ftp://x/"}, headers=AUTH)).status == 400


async def test_trigger_endpoint_fires_now(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> None:
    """The trigger endpoint delivers the callback for an arbitrary id and reports the outcome."""
    client, state = await make_client(aiohttp_client)
    hook_url, received = await start_receiver(aiohttp_server)
    trigger = f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED/trigger/any-id"
    nothing = await (await client.post(trigger, headers=AUTH)).json()
    assert nothing["sent"] is None
    await client.put(
        f"/customers/{CUSTOMER}/callbacks/1",
        json={"url": hook_url, "authorizationHeaderValue": "token"},
        headers=AUTH,
    )
    response = await client.post(trigger, headers=AUTH)
    assert response.status == 200
    answer = await response.json()
    assert answer["sent"]["status"] == 204
    assert answer["sent"]["source"] == "trigger"
    assert received == [("any-id", "token", b"")]
    assert len(state.callbacks_sent) == 1
    forbidden = f"/customers/{uuid.uuid4()}/callbacks/1/trigger/x"
    assert (await client.post(forbidden, headers=AUTH)).status == 403


async def test_unreachable_receiver_is_recorded_as_error(
    sandbox: tuple[Client, PictofitSandboxState], aiohttp_server: AiohttpServer
) -> None:
    """A delivery to a closed port is recorded with an error instead of a status."""
    client, state = sandbox
    server = await aiohttp_server(web.Application())
    dead_url = str(server.make_url("/hooks/"))
    await server.close()
    await client.put(f"/customers/{CUSTOMER}/callbacks/1", json={"url": dead_url}, headers=AUTH)
    answer = await (
        await client.post(f"/customers/{CUSTOMER}/callbacks/1/trigger/x", headers=AUTH)
    ).json()
    assert answer["sent"]["status"] is None
    assert answer["sent"]["error"]
    assert state.callbacks_sent[0].error


async def test_cleanup_cancels_pending_processing(aiohttp_client: AiohttpClient) -> None:
    """Closing the app cancels background processing and closes the callback session."""
    client, state = await make_client(aiohttp_client, processing_delay_s=30)
    configuration_id = await put_configuration(client, await put_product(client))
    await client.post(f"/configurations/{configuration_id}/ready", headers=AUTH)
    (task,) = state.tasks
    await client.close()
    assert task.cancelled()
    assert state.tasks == set()
    assert state.http is None


# --- faults -------------------------------------------------------------------------------------


async def test_latency_fault(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """latency_s delays every answer by at least that long."""
    client, state = sandbox
    state.faults.latency_s = 0.15
    started = time.monotonic()
    assert (await client.get("/products/types", headers=AUTH)).status == 200
    assert time.monotonic() - started >= 0.15


async def test_error_rate_fault_is_seeded(aiohttp_client: AiohttpClient) -> None:
    """error_rate answers that fraction with 500, in the same order for the same seed."""
    sequences = []
    for _ in range(2):
        client, state = await make_client(aiohttp_client, seed=7)
        state.faults.error_rate = 0.5
        statuses = [(await client.get("/products/types", headers=AUTH)).status for _ in range(20)]
        sequences.append(statuses)
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 500}
    state.faults.error_rate = 1.0
    response = await client.get("/products/types", headers=AUTH)
    assert response.status == 500
    assert "message" in await response.json()


async def test_drop_fault_closes_the_connection(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """drop_rate closes the connection without an answer; the client sees a disconnect."""
    client, state = sandbox
    state.faults.drop_rate = 1.0
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await client.get("/products/types", headers=AUTH)
    state.faults.drop_rate = 0.0
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_throttle_fault_answers_429_with_retry_after(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """throttle_remaining=N answers the next N requests 429 with Retry-After, then recovers."""
    client, state = sandbox
    state.faults.throttle_remaining = 2
    state.faults.throttle_retry_after = 7
    for _ in range(2):
        response = await client.get("/products/types", headers=AUTH)
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_fail_next_fault_answers_503(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """fail_next=N answers the next N requests 503 (even unauthenticated ones), then recovers."""
    client, state = sandbox
    state.faults.fail_next = 2
    assert (await client.get("/products/types", headers=AUTH)).status == 503
    assert (await client.get("/products/types")).status == 503
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_control_endpoints_set_faults_and_are_never_faulted(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """/_sandbox/faults updates the knobs without auth; /_sandbox/* is exempt from them."""
    client, state = sandbox
    response = await client.post("/_sandbox/faults", json={"error_rate": 1.0, "fail_next": 1})
    assert response.status == 200
    assert (await response.json())["error_rate"] == 1.0
    assert state.faults.error_rate == 1.0
    assert state.faults.fail_next == 1
    summary = await client.get("/_sandbox/state")
    assert summary.status == 200
    assert (await summary.json())["faults"]["fail_next"] == 1
    assert (await client.post("/_sandbox/faults", json={"error_rate": 2})).status == 400
    assert (await client.post("/_sandbox/faults", json={"nope": 1})).status == 400
    assert (await client.post("/_sandbox/faults", json={"fail_next": True})).status == 400
    assert state.faults.error_rate == 1.0
    assert state.requests == []  # control calls are not recorded


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
