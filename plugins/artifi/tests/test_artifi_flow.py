"""The Artifi backend end to end: a guest uploads, signs up, and manages photos, per tenant."""

from __future__ import annotations

from typing import Any

from artifi_harness import (
    ARTIFI_KEY_A,
    ARTIFI_KEY_B,
    LIST,
    SETTINGS,
    TENANT_B,
    UPLOAD,
    WEBSITE_A,
    WEBSITE_B,
    ArtifiGateway,
    MakeArtifi,
    artifi,
    image,
    make_artifi,
)

from gateway.plugin_api import assert_conforms

__all__ = ["artifi", "make_artifi"]  # the fixtures, for this module's tests


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def test_guest_uploads_then_merges_into_registered_user(artifi: ArtifiGateway) -> None:
    """Upload for a guest, list, merge into a registered user, list theirs, delete one."""
    first = await json_of(
        await artifi.upload("guest-7f3a", image("JPEG", (640, 480)), guest="true"), 201
    )
    second = await json_of(
        await artifi.upload(
            "guest-7f3a", image("PNG", (321, 123)), filename="cat.png", content_type="image/png"
        ),
        201,
    )
    assert_conforms("Photo", first)
    assert (first["width"], first["height"]) == (640, 480)
    assert (second["width"], second["height"]) == (321, 123)
    assert (first["extension"], first["mimeType"]) == (".jpg", "image/jpeg")
    assert (second["extension"], second["mimeType"]) == (".png", "image/png")
    assert (first["imageName"], second["imageName"]) == ("holiday", "cat")
    assert first["dpi"] == 72
    assert first["code"] == first["id"]

    guest_page = await json_of(await artifi.photos("guest-7f3a"), 200)
    assert_conforms("PhotoPage", guest_page)
    assert [p["id"] for p in guest_page["items"]] == [first["id"], second["id"]]
    assert guest_page["items"][0] == first
    assert (guest_page["total"], guest_page["page"], guest_page["pageSize"]) == (2, 1, 20)

    merged = await json_of(await artifi.merge("user-42", "guest-7f3a"), 200)
    assert_conforms("MergeUserResult", merged)
    assert merged == {"userId": "user-42", "guestUserId": "guest-7f3a", "merged": True}
    assert (await json_of(await artifi.photos("guest-7f3a"), 200))["total"] == 0
    user_page = await json_of(await artifi.photos("user-42"), 200)
    assert [p["id"] for p in user_page["items"]] == [first["id"], second["id"]]
    assert [(p["width"], p["height"]) for p in user_page["items"]] == [(640, 480), (321, 123)]

    deleted = await artifi.delete("user-42", first["id"])
    assert deleted.status == 204, await deleted.text()
    after = await json_of(await artifi.photos("user-42"), 200)
    assert [p["id"] for p in after["items"]] == [second["id"]]
    [photo] = artifi.sandbox.photos[WEBSITE_A.website_id]["user-42"]
    assert str(photo.id) == second["id"]


async def test_upload_sends_documented_query_and_multipart(artifi: ArtifiGateway) -> None:
    """The upload carries frontAppUserId, isGuest, dpi, oldExternalUserId and the credentials."""
    response = await artifi.upload(
        "user-1", image(), guest="true", dpi="300", previousUserId="legacy-9"
    )
    photo = await json_of(response, 201)
    assert photo["dpi"] == 300
    [sent] = artifi.requests_to(UPLOAD)
    assert sent.method == "POST"
    assert sent.query == {
        "frontAppUserId": "user-1",
        "isGuest": "true",
        "dpi": "300",
        "oldExternalUserId": "legacy-9",
        "websiteId": str(WEBSITE_A.website_id),
        "webApiClientKey": ARTIFI_KEY_A,
    }
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    [stored] = artifi.sandbox.photos[WEBSITE_A.website_id]["user-1"]
    assert stored.is_guest is True


async def test_events_for_upload_delete_and_merge(artifi: ArtifiGateway) -> None:
    """photo.uploaded, photo.deleted and user.merged are emitted with the contract's data."""
    photo = await json_of(await artifi.upload("guest-1", image(), guest="true"), 201)
    assert (await artifi.merge("user-1", "guest-1")).status == 200
    assert (await artifi.delete("user-1", photo["id"])).status == 204

    [uploaded] = await artifi.events("photo.uploaded")
    assert_conforms("PhotoUploadedEvent", uploaded)
    assert uploaded["data"] == {"userId": "guest-1", "photo": photo}
    assert uploaded["backend"] == "artifi"
    [merged] = await artifi.events("user.merged")
    assert_conforms("UserMergedEvent", merged)
    assert merged["data"] == {"userId": "user-1", "guestUserId": "guest-1"}
    [deleted] = await artifi.events("photo.deleted")
    assert_conforms("PhotoDeletedEvent", deleted)
    assert deleted["data"] == {"userId": "user-1", "photoId": photo["id"]}
    assert await artifi.events("photo.uploaded", tenant=TENANT_B) == []


async def test_event_types_are_declared(artifi: ArtifiGateway) -> None:
    """The backend lists its three event types, each one of the contract's webhooks."""
    response = await artifi.client.get("/v1/event-types", headers=artifi.auth())
    body = await json_of(response, 200)
    ours = {item["type"] for item in body["items"] if item["backend"] == "artifi"}
    assert ours == {"photo.uploaded", "photo.deleted", "user.merged"}


async def test_list_pages_and_search(artifi: ArtifiGateway) -> None:
    """page/pageSize/search become pageIndex/pageSize/searchKey; total counts every match."""
    names = ["beach-1", "beach-2", "snow-1", "beach-3"]
    ids = []
    for name in names:
        photo = await json_of(await artifi.upload("u-5", image(), filename=f"{name}.jpg"), 201)
        ids.append(photo["id"])
    page = await json_of(await artifi.photos("u-5", page="2", pageSize="2", search="BEACH"), 200)
    assert [p["imageName"] for p in page["items"]] == ["beach-3"]
    assert (page["page"], page["pageSize"], page["total"]) == (2, 2, 3)
    assert artifi.requests_to(LIST)[-1].query["pageIndex"] == "2"
    assert artifi.requests_to(LIST)[-1].query["searchKey"] == "BEACH"
    empty = await json_of(await artifi.photos("nobody"), 200)
    assert empty == {"items": [], "page": 1, "pageSize": 20, "total": 0}


async def test_a_page_past_the_contracts_maximum_is_400(artifi: ArtifiGateway) -> None:
    """A page number no 32-bit page index holds (schemathesis sent 41274942231316684800, which
    answered 500) is a 400 naming `page`, and nothing reaches Artifi."""
    before = len(artifi.requests_to(LIST))
    for page in ("2147483648", "41274942231316684800"):
        body = await json_of(await artifi.photos("u-5", page=page), 400)
        assert [e["location"] for e in body["errors"]] == ["page"], body
    assert len(artifi.requests_to(LIST)) == before


async def test_photo_settings(artifi: ArtifiGateway) -> None:
    """getPhotoSettings answers the tenant's website rules, in bytes and pixels."""
    a = await json_of(await artifi.client.get("/v1/photo-settings", headers=artifi.auth()), 200)
    assert_conforms("PhotoSettings", a)
    assert a == {
        "allowedTypes": ["JPEG", "JPG", "PNG"],
        "maxBytes": 5 * 1024 * 1024,
        "maxWidth": 3000,
        "maxHeight": 3000,
        "dpi": 90,
    }
    b_response = await artifi.client.get("/v1/photo-settings", headers=artifi.auth(TENANT_B))
    b = await json_of(b_response, 200)
    assert b == {
        "allowedTypes": ["PNG"],
        "maxBytes": 1024 * 1024,
        "maxWidth": 800,
        "maxHeight": 600,
        "dpi": 300,
    }


async def test_two_tenants_on_different_websites(artifi: ArtifiGateway) -> None:
    """Each tenant calls with its own website id and key, sees only its photos and its rules."""
    a = await json_of(await artifi.upload("same-user", image("JPEG")), 201)
    b = await json_of(
        await artifi.upload(
            "same-user", image("PNG", (200, 100)), tenant=TENANT_B, content_type="image/png"
        ),
        201,
    )
    credentials = {
        (r.query["websiteId"], r.query["webApiClientKey"]) for r in artifi.requests_to(UPLOAD)
    }
    assert credentials == {
        (str(WEBSITE_A.website_id), ARTIFI_KEY_A),
        (str(WEBSITE_B.website_id), ARTIFI_KEY_B),
    }
    page_a = await json_of(await artifi.photos("same-user"), 200)
    page_b = await json_of(await artifi.photos("same-user", tenant=TENANT_B), 200)
    assert [p["id"] for p in page_a["items"]] == [a["id"]]
    assert [p["id"] for p in page_b["items"]] == [b["id"]]
    # Tenant B's website takes PNG only: the same JPEG is refused for B, before Artifi.
    refused = await artifi.upload("same-user", image("JPEG"), tenant=TENANT_B)
    assert refused.status == 415
    assert len(artifi.requests_to(UPLOAD)) == 2
    # One settings call per tenant, each with that tenant's website.
    assert sorted(r.query["websiteId"] for r in artifi.requests_to(SETTINGS)) == sorted(
        [str(WEBSITE_A.website_id), str(WEBSITE_B.website_id)]
    )
    # B cannot delete A's photo: Artifi knows it under another website.
    assert (await artifi.delete("same-user", a["id"], tenant=TENANT_B)).status == 404
    assert (await artifi.delete("same-user", a["id"])).status == 204


async def test_assumptions_are_configuration(make_artifi: MakeArtifi) -> None:
    """An assumed choice changed in the tenant's table changes what goes to Artifi."""
    artifi = await make_artifi(
        tenant_a={"assumptions": {"file_part": "photo", "first_page_index": 0}}
    )
    response = await artifi.upload("u", image())
    # The sandbox only knows `postedFile`: it finds no file, and says so with 262.
    assert response.status == 422, await response.text()
    body = await response.json()
    assert (body["upstreamErrorCodes"], body["errors"][0]["location"]) == (["262"], "/file")
    assert (await artifi.photos("u", page="3")).status == 200
    assert artifi.requests_to(LIST)[-1].query["pageIndex"] == "2"
