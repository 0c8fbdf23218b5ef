"""The Artifi sandbox answers like the documented API: its credentials checks and the photo
upload, with its assumed choices."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.sandboxes.artifi_api import CREDS, KEY, LIST, SETTINGS_PATH, UPLOAD
from tests.sandboxes.artifi_calls import Client, get_json, image_bytes, photo_form, state_of, upload

# --- credentials ------------------------------------------------------------------------------


async def test_missing_website_id_is_372(client: Client) -> None:
    """Without websiteId every api/2 and api/3 call answers the 372 envelope with HTTP 200."""
    async with client.post(SETTINGS_PATH, params={"webApiClientKey": KEY}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["Response"] == "Error"
    assert body["ErrorCode"] == "372"
    assert body["Data"] is None


@pytest.mark.parametrize("website_id", ["999", "abc"])
async def test_unknown_website_is_221(client: Client, website_id: str) -> None:
    """An unknown or non-numeric websiteId is 221."""
    params = {"websiteId": website_id, "webApiClientKey": KEY}
    async with client.post(SETTINGS_PATH, params=params) as resp:
        body = await resp.json()
    assert (body["Response"], body["ErrorCode"]) == ("Error", "221")


async def test_multi_error_codes_quirk(client: Client) -> None:
    """With multi_error_codes the invalid-website error lists several codes in one string."""
    state_of(client).faults.multi_error_codes = True
    body = await get_json(client, LIST, websiteId="999", userId="u")
    assert body["ErrorCode"] == "221,234"


@pytest.mark.parametrize("key", ["", "wrong", "small-key"])
async def test_empty_or_wrong_key_is_226(client: Client, key: str) -> None:
    """An empty key, a wrong key, or another website's key is 226."""
    params = {"websiteId": "1234", "webApiClientKey": key}
    async with client.post(SETTINGS_PATH, params=params) as resp:
        body = await resp.json()
    assert (body["Response"], body["ErrorCode"]) == ("Error", "226")


async def test_query_names_are_case_insensitive_and_requests_recorded(client: Client) -> None:
    """Capitalised parameter names work, and the recorded request shows the credentials sent."""
    params = {"WebsiteId": "1234", "WebApiClientKey": KEY}
    async with client.post(SETTINGS_PATH, params=params, headers={"X-Trace": "t1"}) as resp:
        assert (await resp.json())["Response"] == "Success"
    recorded = state_of(client).requests[-1]
    assert (recorded.method, recorded.path) == ("POST", SETTINGS_PATH)
    assert recorded.query == params
    assert recorded.headers["X-Trace"] == "t1"


# --- upload -----------------------------------------------------------------------------------


async def test_upload_jpeg_reads_real_dimensions(client: Client) -> None:
    """A Pillow-made 640x480 JPEG is stored and answered with the documented Data shape."""
    body = await upload(client, data=image_bytes("JPEG"), isGuest="true")
    assert body["Response"] == "Success"
    assert body["Message"] is None
    assert body["ErrorCode"] is None
    data = body["Data"]
    assert set(data) == {
        "Id",
        "ImageName",
        "UniqueImageName",
        "Width",
        "Height",
        "DPI",
        "Extension",
        "MimeType",
        "PhotoCode",
    }
    assert data["Id"] == 5101329
    assert data["PhotoCode"] == "5101329"
    assert (data["Width"], data["Height"], data["DPI"]) == (640, 480, 72)
    assert (data["Extension"], data["MimeType"]) == (".jpg", "image/jpeg")
    assert data["ImageName"] == "holiday"
    assert len(data["UniqueImageName"]) == 36
    stored = state_of(client).user_photos(1234, "user-1")
    assert [p.id for p in stored] == [5101329]
    assert stored[0].is_guest is True
    assert state_of(client).uploads_received == 1


async def test_upload_png_without_filename_gets_uuid_name(client: Client) -> None:
    """A PNG part without a filename is named by a uuid; dpi is echoed; ids keep increasing."""
    await upload(client)
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(image_bytes("PNG", (300, 200)), {"Content-Type": "image/png"})
    part.set_content_disposition("form-data", name="postedFile")
    query = {**CREDS, "frontAppUserId": "user-1", "dpi": "300"}
    async with client.post(UPLOAD, params=query, data=writer) as resp:
        data = (await resp.json())["Data"]
    assert data["Id"] == 5101330
    assert (data["Width"], data["Height"], data["DPI"]) == (300, 200, 300)
    assert (data["Extension"], data["MimeType"]) == (".png", "image/png")
    assert len(data["ImageName"]) == 36
    assert data["ImageName"] != data["UniqueImageName"]


@pytest.mark.parametrize("user", ["", "x" * 129])
async def test_upload_bad_user_id_is_261(client: Client, user: str) -> None:
    """An empty or over-128-character frontAppUserId is 261 and stores nothing."""
    body = await upload(client, user=user)
    assert (body["Response"], body["ErrorCode"]) == ("Error", "261")
    assert state_of(client).next_photo_id == 5101329


@pytest.mark.parametrize("dpi", ["abc", "0", "2401"])
async def test_upload_bad_dpi_is_265(client: Client, dpi: str) -> None:
    """A dpi that is not an integer in 1..2400 is 265."""
    body = await upload(client, dpi=dpi)
    assert (body["Response"], body["ErrorCode"]) == ("Error", "265")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(image_bytes("GIF"), id="gif-renamed-jpg"),
        pytest.param(image_bytes("PNG", (3001, 10)), id="too-wide"),
        pytest.param(b"definitely not an image", id="not-an-image"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_upload_bad_file_is_262(client: Client, data: bytes) -> None:
    """The file is judged by content: a GIF named .jpg, oversize dims, junk or empty are 262."""
    body = await upload(client, data=data)
    assert (body["Response"], body["ErrorCode"]) == ("Error", "262")
    assert state_of(client).user_photos(1234, "user-1") == []


async def test_upload_without_posted_file_part_is_262(client: Client) -> None:
    """A multipart body with no postedFile part is 262."""
    form = aiohttp.FormData()
    form.add_field("other", image_bytes("JPEG"), filename="a.jpg", content_type="image/jpeg")
    query = {**CREDS, "frontAppUserId": "u"}
    async with client.post(UPLOAD, params=query, data=form) as resp:
        body = await resp.json()
    assert (body["Response"], body["ErrorCode"]) == ("Error", "262")


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024])
async def test_upload_over_file_size_is_262(client: Client, size: int) -> None:
    """A file over the website's max_file_mb (here 1 MiB) is 262, also past the read cap."""
    query = {"websiteId": "77", "webApiClientKey": "small-key", "frontAppUserId": "u"}
    async with client.post(UPLOAD, params=query, data=photo_form(b"\xff" * size)) as resp:
        body = await resp.json()
    assert (body["Response"], body["ErrorCode"]) == ("Error", "262")


async def test_missing_boundary_is_bare_400_problem(client: Client) -> None:
    """A hand-set multipart Content-Type without boundary gets a bare 400 ProblemDetails."""
    query = {**CREDS, "frontAppUserId": "u"}
    headers = {"Content-Type": "multipart/form-data"}
    async with client.post(UPLOAD, params=query, data=b"x", headers=headers) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        body = await resp.json()
    assert body["status"] == 400
    assert body["title"] == "One or more validation errors occurred."
    assert "Missing content-type boundary." in json.dumps(body["errors"])
    assert "Response" not in body


async def test_old_external_user_id_moves_photos_first(client: Client) -> None:
    """oldExternalUserId moves the old user's photos to frontAppUserId before storing the new."""
    first = (await upload(client, user="old-1"))["Data"]["Id"]
    second = (await upload(client, user="new-1", oldExternalUserId="old-1"))["Data"]["Id"]
    state = state_of(client)
    assert [p.id for p in state.user_photos(1234, "new-1")] == [first, second]
    assert state.user_photos(1234, "old-1") == []
