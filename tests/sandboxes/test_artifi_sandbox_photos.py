"""The Artifi sandbox answers like the documented API for what follows an upload: the website's
image settings, listing a user's photos, deleting one, and moving a guest's to a user."""

from __future__ import annotations

from tests.sandboxes.artifi_api import CREDS, DELETE, LIST, SETTINGS_PATH, UPLOAD
from tests.sandboxes.artifi_calls import Client, get_json, image_bytes, photo_form, state_of, upload

UPDATE_USER = "/api/3/User/UpdateUserId"


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
