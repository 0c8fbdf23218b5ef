"""The Artifi sandbox answers like the documented API, with its assumed choices and faults."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pytest_aiohttp import AiohttpClient

from gateway_artifi.sandbox import (
    SANDBOX_STATE,
    ArtifiSandboxSettings,
    ArtifiSandboxState,
    ArtifiWebsite,
    create_sandbox_app,
)

KEY = "test-key"
SETTINGS = ArtifiSandboxSettings(
    websites=(
        ArtifiWebsite(website_id=1234, client_key=KEY),
        ArtifiWebsite(website_id=77, client_key="small-key", max_file_mb=1),
    ),
    seed=7,
)
CREDS = {"websiteId": "1234", "webApiClientKey": KEY}
UPLOAD = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH = "/api/3/UploadImage/GetImageSettings"
LIST = "/api/3/UploadImage/GetUserUploadedList"
DELETE = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER = "/api/3/User/UpdateUserId"
SERVER_ERROR = {
    "Response": "Error",
    "Message": "Internal server error occurred , while processing image",
    "Data": None,
    "ErrorCode": "500",
}

Client = TestClient[web.Request, web.Application]


def image_bytes(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def photo_form(data: bytes, filename: str = "holiday.jpg", ctype: str = "image/jpeg") -> Any:
    form = aiohttp.FormData()
    # BytesIO: aiohttp warns about large raw bytes bodies.
    form.add_field("postedFile", io.BytesIO(data), filename=filename, content_type=ctype)
    return form


def state_of(client: Client) -> ArtifiSandboxState:
    assert client.app is not None
    return client.app[SANDBOX_STATE]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_sandbox_app(SETTINGS))


async def upload(
    client: Client, user: str = "user-1", data: bytes | None = None, **params: str
) -> dict[str, Any]:
    query = {**CREDS, "frontAppUserId": user, **params}
    form = photo_form(data if data is not None else image_bytes("JPEG"))
    async with client.post(UPLOAD, params=query, data=form) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def get_json(client: Client, path: str, **params: str) -> dict[str, Any]:
    async with client.get(path, params={**CREDS, **params}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


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


# --- settings, list, delete, update user --------------------------------------------------------


async def test_image_settings_come_from_the_website(client: Client) -> None:
    """GetImageSettings (POST) answers the website's rules in the documented shape."""
    params = {"websiteId": "77", "webApiClientKey": "small-key"}
    async with client.post(SETTINGS_PATH, params=params) as resp:
        body = await resp.json()
    assert body["Response"] == "Success"
    assert body["Data"] == {
        "FileSize": 1,
        "ImageExtensions": "JPEG,JPG,PNG",
        "Dimension": {"Width": 3000, "Height": 3000},
        "ImageDPI": 90,
        "UserPhotoImageWidth": 0,
        "UserPhotoImageHeight": 0,
    }


async def test_list_paging_search_and_asset_count(client: Client) -> None:
    """Listing is ascending; pageIndex is 1-based; AssetCount counts all matches, not the page."""
    ids = []
    for n in range(5):
        query = {**CREDS, "frontAppUserId": "u"}
        form = photo_form(image_bytes("JPEG", (10 + n, 10)), filename=f"Pic{n}.jpg")
        async with client.post(UPLOAD, params=query, data=form) as resp:
            ids.append((await resp.json())["Data"]["Id"])

    everything = (await get_json(client, LIST, userId="u"))["Data"]
    assert everything["AssetCount"] == 5
    assert [a["Id"] for a in everything["AssetList"]] == ids
    assert set(everything["AssetList"][0]) >= {"Id", "UniqueName", "ImageName", "Width"}

    page = (await get_json(client, LIST, userId="u", pageSize="2", pageIndex="2"))["Data"]
    assert page["AssetCount"] == 5
    assert [a["Id"] for a in page["AssetList"]] == ids[2:4]

    found = (await get_json(client, LIST, userId="u", searchKey="pic3"))["Data"]
    assert (found["AssetCount"], found["AssetList"][0]["ImageName"]) == (1, "Pic3")

    nobody = (await get_json(client, LIST, userId="nobody"))["Data"]
    assert nobody == {"AssetCount": 0, "AssetList": []}


async def test_delete_via_get_removes_the_photo(client: Client) -> None:
    """DeleteUserPhoto is a GET; afterwards the list lacks the photo; a second delete is 262."""
    photo_id = str((await upload(client, user="u"))["Data"]["Id"])
    body = await get_json(client, DELETE, userId="u", photoId=photo_id)
    assert body == {
        "Response": "Success",
        "Message": "The Image has been successfully deleted.",
        "Data": None,
        "ErrorCode": None,
    }
    assert (await get_json(client, LIST, userId="u"))["Data"]["AssetCount"] == 0
    again = await get_json(client, DELETE, userId="u", photoId=photo_id)
    assert (again["Response"], again["ErrorCode"]) == ("Error", "262")


async def test_update_user_id_moves_guest_photos(client: Client) -> None:
    """UpdateUserId (PUT) appends the guest's photos to the registered user, now not guests."""
    registered = (await upload(client, user="member"))["Data"]["Id"]
    guest = (await upload(client, user="guest-9", isGuest="true"))["Data"]["Id"]
    params = {**CREDS, "newUserId": "member", "oldUserId": "guest-9", "isGuest": "false"}
    async with client.put(UPDATE_USER, params=params) as resp:
        body = await resp.json()
    assert (body["Response"], body["Data"]) == ("Success", True)
    state = state_of(client)
    moved = state.user_photos(1234, "member")
    assert [p.id for p in moved] == [registered, guest]
    assert not any(p.is_guest for p in moved)
    assert (await get_json(client, LIST, userId="guest-9"))["Data"]["AssetCount"] == 0

    async with client.put(UPDATE_USER, params={**CREDS, "newUserId": "member"}) as resp:
        assert (await resp.json())["ErrorCode"] == "261"


# --- quirks -----------------------------------------------------------------------------------


async def test_lowercase_keys_quirk(client: Client) -> None:
    """lowercase_keys lowercases the envelope keys and the Data keys, nested ones too."""
    state_of(client).faults.lowercase_keys = True
    async with client.post(SETTINGS_PATH, params=CREDS) as resp:
        body = await resp.json()
    assert set(body) == {"response", "message", "data", "errorcode"}
    assert body["data"]["dimension"] == {"width": 3000, "height": 3000}


async def test_data_as_string_quirk(client: Client) -> None:
    """data_as_string sends Data as a JSON string holding the usual object."""
    state_of(client).faults.data_as_string = True
    body = await upload(client)
    assert isinstance(body["Data"], str)
    assert json.loads(body["Data"])["Width"] == 640


async def test_problem_details_quirk_applies_once(client: Client) -> None:
    """problem_details_400 turns the next validation failure into a bare 400, then resets."""
    state_of(client).faults.problem_details_400 = True
    query = {**CREDS, "frontAppUserId": "u", "dpi": "0"}
    async with client.post(UPLOAD, params=query, data=photo_form(image_bytes("JPEG"))) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["title"] == "One or more validation errors occurred."
    assert body["status"] == 400
    assert set(body["errors"]) == {"dpi"}
    assert (await upload(client, dpi="0"))["ErrorCode"] == "265"


# --- faults -----------------------------------------------------------------------------------


async def test_latency_fault_delays_answers(client: Client) -> None:
    """latency_s delays API answers but not the control endpoints."""
    async with client.post("/_sandbox/faults", json={"latency_s": 0.2}) as resp:
        assert (await resp.json())["latency_s"] == 0.2
    started = time.monotonic()
    await get_json(client, LIST, userId="u")
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    async with client.get("/_sandbox/state") as resp:
        assert resp.status == 200
    assert time.monotonic() - started < 0.2


async def test_error_rate_answers_documented_500_envelope(client: Client) -> None:
    """error_rate 1 answers every call with the documented 500 envelope, HTTP 200."""
    state_of(client).faults.error_rate = 1
    assert await upload(client) == SERVER_ERROR
    # The upload was received even though it failed: the gateway must not retry it.
    assert state_of(client).uploads_received == 1
    assert state_of(client).user_photos(1234, "user-1") == []


async def test_drop_rate_closes_the_connection(client: Client) -> None:
    """drop_rate 1 closes the connection without any answer."""
    state_of(client).faults.drop_rate = 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(SETTINGS_PATH, params=CREDS)
    assert state_of(client).requests[-1].path == SETTINGS_PATH


async def test_fail_next_answers_503_then_recovers(client: Client) -> None:
    """fail_next N answers the next N API calls with 503; control calls neither count nor fail."""
    async with client.post("/_sandbox/faults", json={"fail_next": 2}) as resp:
        assert resp.status == 200
    for _ in range(2):
        async with client.post(SETTINGS_PATH, params=CREDS) as resp:
            assert resp.status == 503
        async with client.get("/_sandbox/state") as resp:
            assert resp.status == 200
    async with client.post(SETTINGS_PATH, params=CREDS) as resp:
        assert resp.status == 200
        assert (await resp.json())["Response"] == "Success"


async def test_faults_endpoint_rejects_bad_input_and_state_summarises(client: Client) -> None:
    """POST /_sandbox/faults refuses unknown fields and bad types; GET /_sandbox/state reports."""
    async with client.post("/_sandbox/faults", json={"nope": 1}) as resp:
        assert resp.status == 400
    async with client.post("/_sandbox/faults", json={"error_rate": 2}) as resp:
        assert resp.status == 400
    await upload(client, user="u")
    async with client.get("/_sandbox/state") as resp:
        summary = await resp.json()
    assert summary["uploads_received"] == 1
    assert summary["next_photo_id"] == 5101330
    assert summary["websites"]["1234"]["users"]["u"][0]["Id"] == 5101329
    assert summary["faults"]["error_rate"] == 0


async def test_unknown_route_is_404_and_wrong_verb_405(client: Client) -> None:
    """Only the documented paths and verbs exist."""
    async with client.get("/api/2/Nope", params=CREDS) as resp:
        assert resp.status == 404
    async with client.post(DELETE, params=CREDS) as resp:
        assert resp.status == 405
