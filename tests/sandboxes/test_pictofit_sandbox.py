"""Tests of the PICTOFiT Content Service sandbox simulator (gateway_pictofit.sandbox): products,
configurations, file uploads, and their processing into downloadable results."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from PIL import Image
from yarl import URL

from gateway_pictofit.sandbox import (
    STATE_CREATED,
    STATE_FINISHED,
    STATE_IN_PROGRESS,
    STATE_READY,
    STATE_REJECTED,
    PictofitSandboxState,
    sandbox_result_bytes,
)
from tests.sandboxes.pictofit_catalog import (
    CUSTOMER,
    FRONTAL,
    REFERENCE,
    image_bytes,
    put_configuration,
    put_product,
    upload,
    wait_for_state,
)
from tests.sandboxes.pictofit_client import AUTH, Client


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="GIF")
    return buffer.getvalue()


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
